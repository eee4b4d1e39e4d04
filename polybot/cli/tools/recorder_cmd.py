"""``polybot recorder``: the market-data bus into the database, each message exactly once."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.bus.recorder import RecorderCounts, RecorderOptions
    from core.settings import LoadedSettings
    from polybot.cli.main import Subcommands

_DURABLE = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_BATCH = common.int_arg(1, 10_000, unit="messages")
_ACK_WAIT = common.float_arg(1, 3600, unit="seconds")


def _durable(text: str) -> str:
    if not _DURABLE.fullmatch(text):
        raise argparse.ArgumentTypeError("letters, digits, '-' and '_' only, at most 64 characters")
    return text


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "recorder",
        help="record the NATS market-data bus into the database (snapshots, deltas, trades), each message once",
        example=(
            "polybot recorder --config var/sandbox/service.toml --metrics-port 0 --duration 5"
            "  # while polybot sandbox and nats-server -js run"
        ),
        description=(
            "Consume the [bus] stream with a durable JetStream consumer and write its snapshots, deltas and\n"
            "trades into the [db] feed tables through the batched writer. A message is acknowledged only\n"
            "after its rows committed, and every row carries its message's key (unique in the database),\n"
            "so a recorder killed and restarted neither loses nor duplicates a row. Several recorders\n"
            "with the same --durable share the work. Needs a NATS server with JetStream at [bus] url and\n"
            "the schema at head (polybot migrate --apply, or --migrate). Runs until SIGINT/SIGTERM (or\n"
            "--duration), lets the batches in flight commit, and prints a summary."
        ),
    )
    p.add_argument("--config", required=True, help="service TOML ([bus] for the stream, [db] url, [metrics])")
    p.add_argument(
        "--durable",
        type=_durable,
        default=None,
        help="the durable consumer's name; recorders sharing it split the work (default polybot-recorder)",
    )
    p.add_argument("--batch", type=_BATCH, default=1000, metavar="N", help="messages per fetch (default 1000)")
    p.add_argument(
        "--ack-wait",
        type=_ACK_WAIT,
        default=30.0,
        metavar="S",
        help="a message not acknowledged this long is delivered again (set when the consumer is made; default 30)",
    )
    p.add_argument(
        "--metrics-port",
        type=common.tcp_port,
        default=None,
        metavar="PORT",
        help="serve /metrics on [metrics] host at PORT (0: a free port); default: as [metrics] says",
    )
    p.add_argument("--migrate", action="store_true", help="apply pending migrations first")
    p.add_argument("--name", default="", help="this recorder's connection name (default recorder@host:pid)")
    p.add_argument(
        "--duration", type=common.duration_s, default=None, help="stop by itself after S seconds (tests, demos)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from core.bus.recorder import DEFAULT_DURABLE, RecorderOptions
    from core.logsetup import setup_logging_from_settings
    from core.settings import load_settings

    loaded = load_settings(args.config)
    setup_logging_from_settings(loaded.settings.logging, verbosity=args.verbose)
    bus = loaded.settings.bus
    options = RecorderOptions(
        stream=bus.stream,
        prefix=bus.prefix,
        durable=args.durable or DEFAULT_DURABLE,
        batch=args.batch,
        ack_wait_s=args.ack_wait,
    )
    name = args.name or f"recorder@{socket.gethostname()}:{os.getpid()}"
    counts = asyncio.run(_record(loaded, options, name, args))
    if args.json:
        common.print_json(asdict(counts))
    else:
        sys.stdout.write(
            f"recorded {counts.stored} messages ({counts.rows} rows); {counts.duplicate} already stored, "
            f"{counts.no_rows} without rows, {counts.invalid} invalid, {counts.redelivered} redelivered\n"
        )
    return 0


async def _record(
    loaded: LoadedSettings, options: RecorderOptions, name: str, args: argparse.Namespace
) -> RecorderCounts:
    from core.app.recorder import run_recorder
    from core.bus.connect import BusUnavailable
    from core.errors import PolybotError

    stop = asyncio.Event()

    def ready(line: str) -> None:
        sys.stderr.write(f"polybot: {line}\n")
        sys.stderr.flush()

    with common.stop_on_signals(stop):
        if args.duration is not None:
            asyncio.get_running_loop().call_later(args.duration, stop.set)
        try:
            return await run_recorder(
                loaded.settings,
                options,
                stop,
                name=name,
                metrics_port=args.metrics_port,
                migrate=args.migrate,
                on_ready=ready,
            )
        except BusUnavailable as exc:
            raise PolybotError(str(exc)) from None
