"""``polybot metrics``, ``metrics-export`` and ``metrics-serve``: Prometheus metrics from the CLI.

``polybot metrics --config FILE`` reads the running service's ``/metrics`` when the file enables
``[metrics]``, and says where it read. Otherwise a CLI process reports what runs in it: so that
the values mean something standalone, each command first feeds a recording (``--replay FILE``; by default the project's own recording
under fixtures/recordings/) through the real processor -> pipeline -> batched writer (into a
throwaway in-memory SQLite database). ``metrics-serve`` can also follow a live market-channel
websocket (``--ws-url`` + ``--subscribe``), e.g. ``polybot mock-ws``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import PolybotError, UsageError
from polybot.cli import common
from polybot.cli.common import stop_on_signals
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from prometheus_client import Metric

    from core.metrics.replay import ReplayResult
    from polybot.cli.main import Subcommands


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "metrics",
        help="summarise the metric values: the running service's (--config), else a replayed recording's",
        description=(
            "Print the current value of every Polybot metric, grouped like the Grafana dashboard rows.\n"
            "With --config FILE whose [metrics] is enabled, the values are the running service's: read\n"
            "from its /metrics (http://HOST:PORT/metrics of that section), and the first line says so.\n"
            "Otherwise (no --config, [metrics] not enabled, or nothing answers there) a CLI process only\n"
            "has what runs in it: the bundled recording (fixtures/recordings/, or --replay FILE) is fed\n"
            "through the feed processor, pipeline and batched writer first, and the first line says\n"
            "that these are replayed values, not the service's; --no-replay skips the replay."
        ),
        example="polybot metrics",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="service TOML: with [metrics] enabled, read the running service's /metrics",
    )
    _replay_args(p)
    p.add_argument("--json", action="store_true", help="print the values as JSON")
    p.set_defaults(func=_metrics)

    p = add_command(
        sub,
        "metrics-export",
        help="write the Prometheus text exposition (after replaying a recording)",
        description=(
            "Write the metrics in the Prometheus text format (what /metrics serves) to stdout or\n"
            "--out FILE. The recording is replayed first as for 'polybot metrics'.\n"
            "Check it with: promtool check metrics < FILE"
        ),
        example="polybot metrics-export --out var/metrics.prom",
    )
    _replay_args(p)
    p.add_argument("--out", type=common.output_file, help="output file (default: stdout)")
    p.set_defaults(func=_export)

    p = add_command(
        sub,
        "metrics-serve",
        help="serve /metrics over HTTP for Prometheus (replaying a recording or following a feed)",
        description=(
            "Serve the metrics on http://HOST:PORT/metrics with prometheus_client's HTTP server.\n"
            "The first stdout line is the URL (--port 0 picks a free port). Then the recording is\n"
            "fed through the pipeline (--rate paces it, --loop repeats it) and/or a live\n"
            "market-channel websocket is followed (--ws-url with --subscribe). Runs until\n"
            "--duration or Ctrl-C."
        ),
        example="polybot metrics-serve --host 127.0.0.1 --port 0 --rate 20 --loop",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=common.tcp_port, default=9108, help="TCP port (default 9108; 0 picks a free one)")
    _replay_args(p)
    p.add_argument(
        "--rate", type=common.rate_hz, default=0.0, metavar="HZ", help="replay frames per second (0 = at once)"
    )
    p.add_argument("--loop", action="store_true", help="repeat the recording until stopped")
    p.add_argument("--ws-url", type=common.ws_url, help="also follow this market-channel websocket (ws:// or wss://)")
    p.add_argument(
        "--subscribe",
        nargs="+",
        action="extend",
        default=[],
        metavar="ASSET",
        help="asset ids to subscribe on --ws-url",
    )
    p.add_argument("--duration", type=common.duration_s, metavar="S", help="stop after this many seconds")
    p.set_defaults(func=_serve)


def _replay_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--replay",
        type=common.input_file("recording"),
        metavar="FILE",
        help="recording to feed through the pipeline first (JSONL or JSON capture; default: the project's)",
    )
    group.add_argument("--no-replay", action="store_true", help="do not replay anything")


def _recording(args: argparse.Namespace) -> Path | None:
    from core.metrics.replay import default_recording

    if args.no_replay:
        return None
    if args.replay is not None:
        given: Path = args.replay
        return given
    found = default_recording()
    if found is None:
        sys.stderr.write("no recording under fixtures/recordings/: showing this process's metrics only\n")
    return found


async def _collect_after_replay(path: Path | None) -> list[Metric]:
    """Replay (when given), let the writer commit, and collect the families on this loop."""
    from core.metrics.collect import METRICS
    from core.metrics.replay import IngestRig

    if path is None:
        return list(METRICS.families())
    rig = await IngestRig.open(METRICS)
    try:
        await rig.replay(path)
        await rig.flush()
        return list(METRICS.families())
    finally:
        await rig.close()


SCRAPE_TIMEOUT_S = 3.0


def _scrape(url: str, timeout_s: float = SCRAPE_TIMEOUT_S) -> list[Metric]:
    """The metric families a ``/metrics`` endpoint serves; ``OSError`` / ``ValueError`` when nothing
    (or no Prometheus exposition) answers."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # this machine: never a proxy
    with opener.open(url, timeout=timeout_s) as resp:
        text = resp.read().decode("utf-8")
    families = list(text_string_to_metric_families(text))
    if not any(f.name.startswith("polybot_") for f in families):
        raise ValueError("no polybot_* metric in the answer")
    return families


def metrics_url(host: str, port: int) -> str:
    """Where a service with ``[metrics] host``/``port`` answers (a wildcard address: this machine)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{shown}]:{port}/metrics" if ":" in shown else f"http://{shown}:{port}/metrics"


def _service_url(config: str) -> tuple[str | None, str]:
    """(the /metrics URL of the service ``config`` runs, or None; why not, in words)."""
    from core.settings import load_settings

    m = load_settings(config).settings.metrics  # ConfigError: exit 2 with every problem listed
    if not m.enabled:
        return None, f"[metrics] is not enabled in {config}: the service there serves no /metrics"
    if m.port == 0:
        return None, f"[metrics] port = 0 in {config}: the service picked a free port (its log line says which)"
    return metrics_url(m.host, m.port), ""


def _source_of_replay(path: Path | None, given: bool) -> str:
    if path is None:
        return "this process's own metrics: nothing replayed, no service read"
    which = "the recording" if given else "the bundled recording"
    return f"replayed {which} {_shown(path)} through this process: not a running service's values"


def _shown(path: Path) -> str:
    """``fixtures/recordings/demo_market.jsonl`` when it is under the current directory."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _metrics(args: argparse.Namespace) -> int:
    from core.metrics.summary import as_json, render
    from polybot.cli.common import print_json

    families: list[Metric] | None = None
    why = "no --config: no service read (--config FILE reads a running service's /metrics)"
    source: dict[str, str] = {}
    if args.config is not None:
        url, why = _service_url(args.config)
        if url is not None:
            try:
                families = _scrape(url)
                source = {"read_from": url, "note": f"read from {url} (the service of {args.config})"}
            except (OSError, ValueError) as exc:
                why = f"nothing answers at {url} ({_reason(exc)}): is the service of {args.config} running?"
    if families is None:
        path = _recording(args)
        families = asyncio.run(_collect_after_replay(path))
        source = {
            "replayed": str(path) if path else "",
            "why": why,
            "note": _source_of_replay(path, args.replay is not None),
        }
    if args.json:
        print_json({"source": source, **as_json(families)})
        sys.stderr.write(_source_lines(source) + "\n")
    else:
        print(_source_lines(source) + "\n")
        print(render(families))
    return 0


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # urllib.error.URLError wraps the socket's error
    inner = reason if isinstance(reason, BaseException) else exc
    return f"{type(inner).__name__}: {getattr(inner, 'strerror', None) or inner}"


def _source_lines(source: dict[str, str]) -> str:
    return "\n".join(line for line in (source.get("why", ""), source["note"]) if line)


def _export(args: argparse.Namespace) -> int:
    from prometheus_client.exposition import generate_latest

    from core.metrics.collect import METRICS

    path = _recording(args)

    async def run() -> bytes:
        await _collect_after_replay(path)
        return generate_latest(METRICS.registry)

    text = asyncio.run(run())
    if args.out is None:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
    else:
        try:
            args.out.write_bytes(text)
        except OSError as exc:
            raise PolybotError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        sys.stderr.write(f"wrote {len(text)} bytes of metrics to {args.out}\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    if args.ws_url is not None:
        if not args.subscribe:
            raise UsageError("--ws-url needs --subscribe ASSET ... (polybot mock-ws prints the ids it serves)")
    elif args.subscribe:
        raise UsageError("--subscribe needs --ws-url")
    path = _recording(args)
    return asyncio.run(_serve_async(args, path))


async def _serve_async(args: argparse.Namespace, path: Path | None) -> int:
    from core.metrics.collect import METRICS
    from core.metrics.replay import IngestRig

    stop = asyncio.Event()
    rig: IngestRig | None = None
    server = None
    failure: BaseException | None = None
    replay_task: asyncio.Task[ReplayResult] | None = None
    try:
        with stop_on_signals(stop):  # before the URL is printed: whoever reads it may stop us at once
            # listen and report the URL first: opening the rig (database, schema) takes a moment
            try:
                server = METRICS.serve(args.host, args.port)
            except OSError as exc:
                raise PolybotError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
            sys.stdout.write(server.url + "\n")
            sys.stdout.flush()
            if path is not None or args.ws_url:
                rig = await IngestRig.open(METRICS, known_assets=args.subscribe or None)
            if rig is not None and args.ws_url:
                await rig.start_feed(args.ws_url, args.subscribe)
            if rig is not None and path is not None:
                sys.stderr.write(f"replaying {path}" + (f" at {args.rate:g} frames/s" if args.rate else "") + "\n")
                replay_task = asyncio.create_task(rig.replay(path, rate_hz=args.rate, loop=args.loop, stop=stop))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + args.duration if args.duration else None
            stopper = asyncio.create_task(stop.wait())
            try:
                while True:
                    pending: set[asyncio.Task[object]] = {stopper}
                    if replay_task is not None:
                        pending.add(replay_task)
                    timeout = None if deadline is None else max(0.0, deadline - loop.time())
                    done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                    if not done or stopper in done:  # --duration reached, or Ctrl-C / SIGTERM
                        break
                    assert replay_task is not None
                    failure = replay_task.exception()
                    if failure is not None:
                        break
                    result = replay_task.result()
                    sys.stderr.write(f"replay done: {result.frames} frames in {result.seconds:.2f}s; still serving\n")
                    replay_task = None
            finally:
                stopper.cancel()
    finally:
        stop.set()
        if replay_task is not None and not replay_task.done():
            replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await replay_task
        if server is not None:
            await server.aclose()
        if rig is not None:
            await rig.close()
    if isinstance(failure, PolybotError):
        raise failure
    if failure is not None:
        raise PolybotError(f"replay failed: {type(failure).__name__}: {failure}")
    return 0
