"""``polybot run-service``: the whole service on one loop until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.settings import LoadedSettings
    from polybot.cli.main import Subcommands

log = logging.getLogger(__name__)


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "run-service",
        help="run the service: feed, strategies, engine, Telegram bot, jobs, metrics (one asyncio loop)",
        example="polybot run-service --config var/sandbox/service.toml --duration 5  # while polybot sandbox runs",
        description=(
            "Run Polybot until SIGINT/SIGTERM. It always starts DISARMED: arm it with /arm in Telegram.\n"
            "On shutdown it stops strategies, disarms, cancels open orders when [service] cancel_on_shutdown,\n"
            "flushes the database writer, closes sockets and exits 0."
        ),
    )
    p.add_argument("--config", required=True, help="service TOML (secrets.local.toml next to it is overlaid)")
    p.add_argument("--migrate", action="store_true", help="apply pending database migrations at start")
    p.add_argument(
        "--duration", type=common.duration_s, default=None, help="stop by itself after S seconds (tests, demos)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from core.logsetup import setup_logging_from_settings
    from core.settings import load_settings

    loaded = load_settings(args.config)
    setup_logging_from_settings(loaded.settings.logging, verbosity=args.verbose)
    return asyncio.run(run_service(loaded, migrate=args.migrate, duration=args.duration))


async def run_service(loaded: LoadedSettings, *, migrate: bool = False, duration: float | None = None) -> int:
    from bot.app import start_telegram
    from core.service import Service, ServiceOptions

    # the CLI composes the front ends; core/service.py itself never imports bot/
    service = Service(loaded, ServiceOptions(migrate=migrate, frontend=start_telegram))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.request_stop)
    try:
        await service.start()
        sys.stderr.write(
            f"polybot: running in {service.mode.value} mode, DISARMED; Ctrl-C or SIGTERM stops it cleanly\n"
        )
        sys.stderr.flush()
        if duration is not None:
            try:
                await asyncio.wait_for(service.wait(), timeout=duration)
            except TimeoutError:
                pass
        else:
            await service.wait()
    finally:
        await service.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    sys.stderr.write("polybot: stopped cleanly\n")
    return 0
