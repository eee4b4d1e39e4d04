"""``polybot record-ws`` (record the market channel) and ``polybot mock-ws`` (local exchange feed)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING

from core.defaults import DEFAULT_WS_URL
from core.errors import PolybotError, UsageError
from polybot.cli import common
from polybot.cli.common import FirstFrames, add_first_frame_timeout, stop_on_signals
from polybot.cli.main import add_command
from polybot.cli.tools.from_config import add_config, feed_assets, need_url, settings_of

if TYPE_CHECKING:  # the feed modules (websockets, msgspec) load only when a command runs
    from core.feed.connection import ConnectionEvent
    from polybot.cli.main import Subcommands


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "record-ws",
        help="record raw market-channel frames with receive timestamps to a JSONL file",
        description=(
            "Connect to a market-channel websocket, subscribe to the given assets and write every frame\n"
            'as one JSON line {"recv_ns": <int>, "frame": "<raw text>"}. Stops after --max-messages,\n'
            "--duration, Ctrl-C or SIGTERM, whichever comes first, and prints a summary; the file holds only\n"
            "whole lines at any time. On a terminal a line shows the messages, bytes and rate so far.\n"
            f"The venue's URL is {DEFAULT_WS_URL}"
        ),
        example=(
            "polybot record-ws --config var/sandbox/service.toml var/feed.jsonl --max-messages 200"
            "  # while polybot sandbox runs"
        ),
    )
    p.add_argument("url", nargs="?", type=common.ws_url, help="websocket URL of the market channel (ws:// or wss://)")
    p.add_argument("out", type=common.output_file, help="output file (JSONL; overwritten)")
    p.add_argument(
        "--subscribe",
        nargs="+",
        action="extend",
        default=[],
        metavar="ASSET",
        help="token (asset) ids to subscribe to (mock-ws prints the ids it serves); with --config, default: "
        "what its feed follows",
    )
    add_config(p, "the URL (feed.ws_url) and the assets its feed follows")
    p.add_argument("--max-messages", type=common.count, help="stop after recording this many frames")
    p.add_argument("--duration", type=common.duration_s, metavar="S", help="stop after this many seconds")
    p.add_argument("--max-assets-per-connection", type=common.count, default=200, metavar="N")
    p.add_argument("--ping-interval", type=common.timeout_s, default=10.0, metavar="S", help="text PING period")
    p.add_argument(
        "--dead-after", type=common.timeout_s, default=30.0, metavar="S", help="silence that declares a socket dead"
    )
    add_first_frame_timeout(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_record_ws)

    p = add_command(
        sub,
        "mock-ws",
        help="run a local double of the market channel (for tests, demos and benchmarks)",
        description=(
            "Serve Polymarket's market channel on loopback: answers the subscribe message with a book per\n"
            "asset, then streams price_change frames from --recording or generated from --seed, and\n"
            "answers PING with PONG. The first stdout line is the URL (ws://HOST:PORT/ws/market); the\n"
            "second is 'assets: ID ID ...', the ids it serves. Runs until Ctrl-C or --duration."
        ),
        example="polybot mock-ws --port 0 --assets 4 --seed 7 --rate 100",
    )
    p.add_argument("--port", type=common.tcp_port, required=True, help="TCP port; 0 picks a free one")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--recording", type=common.input_file("recording"), help="JSONL recording to stream instead of generated frames"
    )
    p.add_argument("--loop", action="store_true", help="restart the recording when it ends")
    p.add_argument("--assets", type=_ASSETS, default=4, help="generated assets (without --recording)")
    p.add_argument("--seed", type=_SEED, default=1, help="seed of the generated stream")
    p.add_argument(
        "--rate", type=common.rate_hz, default=50.0, metavar="HZ", help="frames per second (0 = unthrottled)"
    )
    p.add_argument("--duration", type=common.duration_s, metavar="S", help="stop after this many seconds")
    p.set_defaults(func=_mock_ws)


_ASSETS = common.int_arg(1, 100_000)  # a venue-sized universe (bench/soak.py serves 25,000)
_SEED = common.int_arg(0, 2**63 - 1)


# ---------------------------------------------------------------------- record-ws


def _record_ws(args: argparse.Namespace) -> int:
    from core.feed.connection import ConnectionState
    from core.feed.recorder import RecordSummary, record

    config = settings_of(args)
    if config is not None:
        args.url = args.url or config.feed.ws_url
        args.subscribe = args.subscribe or feed_assets(config)
    args.url = need_url(args.url, "market channel URL")
    if not args.subscribe:
        raise UsageError("give at least one --subscribe ASSET (polybot mock-ws prints the ids it serves)")

    tty = sys.stderr.isatty()
    last_dead: list[str] = []
    signals: list[str] = []  # Ctrl-C / SIGTERM: the recording stops and the summary says why
    # the recorder keeps frames undecoded, so "seen" is all or nothing: any frame counts for every asset
    first = FirstFrames(args.subscribe, args.first_frame_timeout)

    def on_state(event: ConnectionEvent) -> None:
        if event.state is ConnectionState.DEAD:
            last_dead[:] = [event.reason]

    def progress(messages: int, nbytes: int, seconds: float) -> None:
        if messages:
            first.note(args.subscribe)
        if not tty:
            return
        if not messages:
            line = f"waiting for the first frames: {seconds:.0f}s of {first.timeout_s:g}s"
        else:
            line = f"recorded {messages} messages, {nbytes / 1024:.1f} KiB, {messages / max(seconds, 1e-9):.0f} msg/s"
        sys.stderr.write(f"\r{line} ")
        sys.stderr.flush()

    async def run() -> RecordSummary:
        stop = asyncio.Event()
        watch = asyncio.create_task(first.watch(stop, common.warn))
        try:
            with stop_on_signals(stop, signals.append):
                return await record(
                    args.url,
                    args.out,
                    args.subscribe,
                    max_messages=args.max_messages,
                    duration_s=args.duration,
                    stop_event=stop,
                    progress=progress,
                    progress_interval_s=0.25,
                    on_state=on_state,
                    max_assets_per_connection=args.max_assets_per_connection,
                    ping_interval_s=args.ping_interval,
                    dead_after_s=args.dead_after,
                    quiet_before_data=True,  # a feed never heard from is this command's last line
                )
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    try:
        summary = asyncio.run(run())
    except OSError as exc:  # the output file: permission, disk full, read-only file system
        raise PolybotError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    if tty:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(summary.as_dict() | ({"stopped_by": signals[0]} if signals else {})))
    else:
        dropped = f", dropped {summary.dropped}" if summary.dropped else ""
        stopped = f"; stopped by {signals[0]}" if signals else ""
        print(
            f"recorded {summary.messages} messages ({summary.bytes} bytes) in {summary.seconds:.1f}s "
            f"to {summary.path}; reconnects {summary.reconnects}{dropped}{stopped}"
        )
    if summary.messages == 0:
        why = f" (last connection error: {last_dead[0]})" if last_dead else ""
        if first.timed_out:
            raise PolybotError(f"{first.message()} from {args.url}{why}")
        raise PolybotError(f"no frames recorded from {args.url}{why}")
    return 0


# ---------------------------------------------------------------------- mock-ws


def _mock_ws(args: argparse.Namespace) -> int:
    from core.sim.mock_ws import MockMarketServer

    async def run() -> None:
        server = MockMarketServer(
            host=args.host,
            port=args.port,
            recording=args.recording,
            assets=args.assets,
            seed=args.seed,
            rate_hz=args.rate,
            loop_recording=args.loop,
        )
        try:
            await server.start()
        except OSError as exc:
            raise PolybotError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise PolybotError(str(exc)) from exc
        stop = asyncio.Event()
        try:
            with stop_on_signals(stop):
                sys.stdout.write(f"{server.url}\nassets: {' '.join(server.asset_ids)}\n")
                sys.stdout.flush()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.duration)
        finally:
            await server.stop()
            s = server.stats()
            sys.stderr.write(
                f"mock-ws: served {s.total_connections} connections, streamed {s.frames_streamed} frames, "
                f"sent {s.frames_sent}, answered {s.pings} PINGs\n"
            )

    asyncio.run(run())
    return 0
