"""``polybot status-top`` and ``polybot health``: read-only views of the stored feed state.

Health is the control facade's one definition (:mod:`core.control.health`) fed from the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.control.types import StoredAsset
    from polybot.cli.main import Subcommands

_NO_AGE = 1e18  # sorts assets never updated last


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "status-top",
        help="the N most recently updated assets: top of book, spread, age",
        example="polybot status-top --limit 10 --db-url sqlite:///var/sandbox/sandbox.db  # while polybot sandbox runs",
    )
    p.add_argument("--limit", type=common.count, default=10, help="how many assets (default 10)")
    p.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status_top)

    h = add_command(
        sub,
        "health",
        help="health of the stored feed: exit 0 healthy, 1 unhealthy (with reasons)",
        example=(
            "polybot health --staleness-ms 30000 --db-url sqlite:///var/sandbox/sandbox.db  # while polybot sandbox runs"
        ),
        description=(
            "Unhealthy when: the database is unreachable or not migrated, no asset is tracked, an asset's\n"
            "last update is older than --staleness-ms, a stored book is crossed, or a warning/critical alert\n"
            "is still open in the alerts table. Exit 0 healthy, 1 unhealthy, 2 usage."
        ),
    )
    h.add_argument(
        "--staleness-ms",
        type=common.staleness_ms,
        default=60_000,
        help="max age of an asset's last update (default 60000)",
    )
    h.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=_health)


def _age_key(asset: StoredAsset) -> float:
    age = asset["last_update_age_s"]
    return _NO_AGE if age is None else age


def _status_top(args: argparse.Namespace) -> int:
    from core.control.facade import Control

    control = Control.over_database(args.db_url)
    data = asyncio.run(control.stored_status(max_assets=max(args.limit, 1)))
    assets = sorted(data["assets"], key=_age_key)[: args.limit]
    if args.json:
        sys.stdout.write(json.dumps(assets, indent=2) + "\n")
        return 0
    if data["empty"]:
        print("empty database (no schema): run polybot migrate --apply, then ingest")
        return 0
    if not assets:
        print("no tracked assets yet")
        return 0
    from polybot.cli.commands.status_cmd import asset_name

    width = max(len("market outcome"), *(len(asset_name(a)) for a in assets))
    print(f"{'market outcome':{width}} {'bid':>8} {'ask':>8} {'spread':>7} {'age':>9}")
    for a in assets:
        age = a["last_update_age_s"]
        print(
            f"{asset_name(a):{width}} {a['best_bid'] or '-':>8} {a['best_ask'] or '-':>8} "
            f"{a['spread'] or '-':>7} {'-' if age is None else f'{age:.1f}s':>9}"
        )
    return 0


def _health(args: argparse.Namespace) -> int:
    from core.control.facade import Control

    control = Control.over_database(args.db_url)
    report = asyncio.run(control.health(staleness_ms=args.staleness_ms))
    if args.json:
        sys.stdout.write(json.dumps({"healthy": report.ok, "reasons": report.reasons}, indent=2) + "\n")
    else:
        print("healthy" if report.ok else "unhealthy:")
        for r in report.reasons:
            print(f"  - {r}")
    return 0 if report.ok else 1
