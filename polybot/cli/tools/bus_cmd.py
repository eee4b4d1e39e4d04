"""``polybot feed-worker``: one shard of the market's websockets, published on the NATS bus."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import TYPE_CHECKING

from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.bus.shard import Shard
    from core.settings import LoadedSettings
    from polybot.cli.main import Subcommands


def _shard(text: str) -> Shard:
    from core.bus.shard import Shard

    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _assets(text: str) -> list[str]:
    items = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in items if not a.isdigit() or not a.isascii()]
    if not items or bad:
        raise argparse.ArgumentTypeError("a comma-separated list of token ids (decimal digits)")
    return items


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "feed-worker",
        help="publish one shard of the market's books on the NATS JetStream bus (traders: feed.source = bus)",
        example=(
            "polybot feed-worker --config var/sandbox/service.toml --shard 0/2 --duration 5"
            "  # while polybot sandbox and nats-server -js run"
        ),
        description=(
            "Own the market websockets of one shard (markets by a stable hash of their condition id; the\n"
            "members of a neg-risk event together), keep the books with the feed's integrity rules and\n"
            "publish snapshots, deltas, trades, best prices, tick sizes, book statuses and resolutions on\n"
            "<prefix>.md.<condition>.<asset>.<kind> into the [bus] stream. Start a second worker with the\n"
            "same --shard as a standby: the lease in the [bus] lease_bucket makes one active, and the\n"
            "standby takes over within lease_ttl_s when the active one dies. Needs a NATS server with\n"
            "JetStream at [bus] url. Runs until SIGINT/SIGTERM (or --duration)."
        ),
    )
    p.add_argument("--config", required=True, help="service TOML (the markets to follow, [bus], [db] for the markets)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--shard", type=_shard, default=None, help="I/N: serve shard I of N (default [bus] shard)")
    which.add_argument("--assets", type=_assets, default=None, help="exactly these token ids, comma-separated")
    p.add_argument("--name", default="", help="this worker's name in the lease and logs (default host:pid)")
    p.add_argument(
        "--duration", type=common.duration_s, default=None, help="stop by itself after S seconds (tests, demos)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from core.errors import UsageError
    from core.logsetup import setup_logging_from_settings
    from core.settings import load_settings

    loaded = load_settings(args.config)
    setup_logging_from_settings(loaded.settings.logging, verbosity=args.verbose)
    shard = args.shard
    if shard is None and args.assets is None:
        if not loaded.settings.bus.shard:
            raise UsageError("give --shard I/N, --assets, or [bus] shard in the config")
        shard = _shard(loaded.settings.bus.shard)
    name = args.name or f"{socket.gethostname()}:{os.getpid()}"
    return asyncio.run(_worker(loaded, shard, args.assets or [], name, args.duration))


async def _worker(
    loaded: LoadedSettings, shard: Shard | None, assets: list[str], name: str, duration: float | None
) -> int:
    from core.app.feed_worker import FeedWorker, plan_worker
    from core.bus.connect import BusUnavailable
    from core.errors import PolybotError

    plan = await plan_worker(loaded.settings, shard, assets)
    if not plan.assets:
        sys.stderr.write(f"polybot: shard {plan.shard} holds no market of this configuration; nothing to publish\n")
    stop = asyncio.Event()
    worker = FeedWorker(loaded.settings, plan, name=name)
    with common.stop_on_signals(stop):
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, stop.set)
        sys.stderr.write(f"polybot: feed worker {name}, shard {plan.shard}, {len(plan.assets)} assets\n")
        sys.stderr.flush()
        try:
            await worker.run(stop)
        except BusUnavailable as exc:
            raise PolybotError(str(exc)) from None
    sys.stderr.write("polybot: feed worker stopped cleanly\n")
    return 0
