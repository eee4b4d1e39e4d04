"""``polybot status``: what the service's database holds — schema, rows, tracked assets, armed."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING

from core.control.facade import Control
from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.control.types import StoredStatus
    from polybot.cli.main import Subcommands

EMPTY = "empty database (no schema)"


def register(sub: Subcommands) -> None:
    s = add_command(
        sub,
        "status",
        help="schema revision, row counts, tracked assets with top of book and age, armed state",
        example="polybot status --db-url sqlite:///./var/polybot.db --json",
    )
    s.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.add_argument("--verbose", dest="status_verbose", action="store_true", help="add levels, last trades, state")
    s.add_argument(
        "--limit", type=common.count_or_zero, default=50, metavar="N", help="show at most N assets (default 50)"
    )
    s.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    control = Control.over_database(args.db_url)
    data = asyncio.run(control.stored_status(max_assets=args.limit, verbose=args.status_verbose))
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(render_status(data, verbose=args.status_verbose))
    return 0


def _short(asset_id: str) -> str:
    return asset_id if len(asset_id) <= 16 else f"{asset_id[:6]}…{asset_id[-6:]}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def render_status(data: StoredStatus, *, verbose: bool = False) -> str:
    lines = [f"database  {data['db_url']} ({data['backend']})"]
    schema = data["schema"]
    if data["empty"]:
        lines.append(f"schema    {data.get('note') or EMPTY}; run polybot migrate --apply")
        return "\n".join(lines)
    rev = schema["revision"]
    lines.append(
        f"schema    {rev} (head)" if schema["at_head"] else f"schema    {rev or 'none'} (head is {schema['head']})"
    )
    if data.get("note"):
        lines.append(f"note      {data.get('note')}")
    lines.append(f"armed     {'YES' if data['armed'] else 'no'}")
    lines.append(f"markets   {data['markets']}")
    lines.append("rows      " + ", ".join(f"{k} {v}" for k, v in data["tables"].items()))
    lines.append(
        f"assets    {data['assets_tracked']} tracked" + (f", {len(data['assets'])} shown" if data["assets"] else "")
    )
    for a in data["assets"]:
        name = a["asset_id"] if verbose else _short(a["asset_id"])
        bid = f"{a['best_bid']} x {a['best_bid_size']}" if a["best_bid"] is not None else "-"
        ask = f"{a['best_ask']} x {a['best_ask_size']}" if a["best_ask"] is not None else "-"
        flags = []
        if not a["has_snapshot"]:
            flags.append("no snapshot")
        if a["crossed"]:
            flags.append("CROSSED")
        line = f"  {name}  bid {bid} | ask {ask}  spread {a['spread'] or '-'}  age {_age(a['last_update_age_s'])}"
        if flags:
            line += "  [" + ", ".join(flags) + "]"
        lines.append(line)
        if verbose:
            extra = (
                f"    levels {a.get('bid_levels', 0)}/{a.get('ask_levels', 0)}, "
                f"deltas since snapshot {a['deltas_since_snapshot']}"
            )
            trade = a.get("last_trade")
            if trade is not None:
                extra += f", last trade {trade['side'] or ''} {trade['size']} @ {trade['price']} ({_age(trade['age_s'])} ago)"
            lines.append(extra)
    state = data.get("state")
    if verbose and state:
        lines.append("state     " + ", ".join(f"{k}={json.dumps(v['value'])}" for k, v in state.items()))
    return "\n".join(lines)
