"""``polybot record-ws`` (record the market channel) and ``polybot mock-ws`` (local exchange feed)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from core.cli.common import stop_on_signals
from core.cli.main import add_command
from core.errors import PolybotError, UsageError
from core.feed.ws import DEFAULT_MARKET_URL, ConnectionEvent, ConnectionState


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = add_command(
        sub,
        "record-ws",
        help="record raw market-channel frames with receive timestamps to a JSONL file",
        description=(
            "Connect to a market-channel websocket, subscribe to the given assets and write every frame\n"
            'as one JSON line {"recv_ns": <int>, "frame": "<raw text>"}. Stops after --max-messages,\n'
            "--duration or Ctrl-C, whichever comes first; the file holds only whole lines at any time.\n"
            f"The venue's URL is {DEFAULT_MARKET_URL}"
        ),
        example="polybot record-ws ws://127.0.0.1:8765/ws/market out.jsonl --subscribe 123 456 --max-messages 1000",
    )
    p.add_argument("url", help="websocket URL of the market channel (ws:// or wss://)")
    p.add_argument("out", type=Path, help="output file (JSONL; overwritten)")
    p.add_argument(
        "--subscribe",
        nargs="+",
        action="extend",
        default=[],
        metavar="ASSET",
        help="token (asset) ids to subscribe to; required (mock-ws prints the ids it serves)",
    )
    p.add_argument("--max-messages", type=_positive_int, help="stop after recording this many frames")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after this many seconds")
    p.add_argument("--max-assets-per-connection", type=_positive_int, default=200, metavar="N")
    p.add_argument("--ping-interval", type=_positive_float, default=10.0, metavar="S", help="text PING period")
    p.add_argument(
        "--dead-after", type=_positive_float, default=30.0, metavar="S", help="silence that declares a socket dead"
    )
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
    p.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--recording", type=Path, help="JSONL recording to stream instead of generated frames")
    p.add_argument("--loop", action="store_true", help="restart the recording when it ends")
    p.add_argument("--assets", type=_positive_int, default=4, help="generated assets (without --recording)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated stream")
    p.add_argument("--rate", type=float, default=50.0, metavar="HZ", help="frames per second (0 = unthrottled)")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after this many seconds")
    p.set_defaults(func=_mock_ws)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


# ---------------------------------------------------------------------- record-ws


def _record_ws(args: argparse.Namespace) -> int:
    from core.feed.recorder import RecordSummary, record

    if not args.url.startswith(("ws://", "wss://")):
        raise UsageError(f"URL must start with ws:// or wss://, got {args.url!r}")
    if not args.subscribe:
        raise UsageError("give at least one --subscribe ASSET (polybot mock-ws prints the ids it serves)")
    if not args.out.parent.is_dir():
        raise UsageError(f"output directory does not exist: {args.out.parent}")

    tty = sys.stderr.isatty()
    last_dead: list[str] = []

    def on_state(event: ConnectionEvent) -> None:
        if event.state is ConnectionState.DEAD:
            last_dead[:] = [event.reason]

    def progress(messages: int, nbytes: int, seconds: float) -> None:
        rate = messages / seconds if seconds > 0 else 0.0
        sys.stderr.write(f"\rrecorded {messages} messages, {nbytes / 1024:.1f} KiB, {rate:.0f} msg/s ")
        sys.stderr.flush()

    async def run() -> RecordSummary:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            return await record(
                args.url,
                args.out,
                args.subscribe,
                max_messages=args.max_messages,
                duration_s=args.duration,
                stop_event=stop,
                progress=progress if tty else None,
                on_state=on_state,
                max_assets_per_connection=args.max_assets_per_connection,
                ping_interval_s=args.ping_interval,
                dead_after_s=args.dead_after,
            )

    summary = asyncio.run(run())
    if tty:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        dropped = f", dropped {summary.dropped}" if summary.dropped else ""
        print(
            f"recorded {summary.messages} messages ({summary.bytes} bytes) in {summary.seconds:.1f}s "
            f"to {summary.path}; reconnects {summary.reconnects}{dropped}"
        )
    if summary.messages == 0:
        why = f" (last connection error: {last_dead[0]})" if last_dead else ""
        raise PolybotError(f"no frames recorded from {args.url}{why}")
    return 0


# ---------------------------------------------------------------------- mock-ws


def _mock_ws(args: argparse.Namespace) -> int:
    from core.sim.mock_ws import MockMarketServer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    if args.recording is not None and not args.recording.is_file():
        raise UsageError(f"recording not found: {args.recording}")
    if args.rate < 0:
        raise UsageError(f"--rate must be >= 0, got {args.rate}")

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
