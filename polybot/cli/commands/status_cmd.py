"""``polybot status``: what the service's database holds — schema, rows, tracked assets, armed."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.control.types import StateEntry, StoredAsset, StoredStatus
    from polybot.cli.main import Subcommands

EMPTY = "empty database (no schema)"


def register(sub: Subcommands) -> None:
    s = add_command(
        sub,
        "status",
        help="schema revision, row counts, tracked assets with top of book and age, armed state",
        example="polybot status --db-url sqlite:///var/sandbox/sandbox.db --json  # while polybot sandbox runs",
    )
    s.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.add_argument("--verbose", dest="status_verbose", action="store_true", help="add levels, last trades, state")
    s.add_argument(
        "--limit", type=common.count_or_zero, default=50, metavar="N", help="show at most N assets (default 50)"
    )
    s.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    from core.control.facade import Control

    control = Control.over_database(args.db_url)
    data = asyncio.run(control.stored_status(max_assets=args.limit, verbose=args.status_verbose))
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(render_status(data, verbose=args.status_verbose))
    return 0


def _short(asset_id: str) -> str:
    return asset_id if len(asset_id) <= 16 else f"{asset_id[:6]}…{asset_id[-6:]}"


def asset_name(asset: StoredAsset) -> str:
    """``demo-btc-above-150k-2026 Yes``: the market's slug and the outcome, as a trader names them;
    a token the markets table does not know keeps its (shortened) id."""
    if "slug" in asset:
        return f"{asset['slug']} {asset.get('outcome', '?')}"
    return _short(asset["asset_id"])


def _ago(seconds: float) -> str:
    """12 -> '12 s ago', 185 -> '3 min ago', 9000 -> '2.5 h ago', 300000 -> '3.5 d ago'."""
    if seconds < 0:
        return "in the future"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86_400:.1f} d ago"


def when(moment: datetime, now: datetime) -> str:
    """``2026-12-05T05:10:03Z (12 s ago)``: ISO-8601 UTC to the second, and how long ago."""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{utc.strftime('%Y-%m-%dT%H:%M:%SZ')} ({_ago((now - utc).total_seconds())})"


_EPOCH_S = {"ts", "at", "time", "since", "until"}  # a state field holding unix seconds
_EPOCH_MIN, _EPOCH_MAX = 946_684_800, 4_102_444_800  # 2000-01-01 .. 2100-01-01: a date, not a count


def _moment(key: str, value: object) -> datetime | None:
    """A state field that holds a time: unix seconds (``ts``, ``*_ts``, ``*_at`` ...) or ``*_ns``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    name = key.lower()
    seconds = value / 1e9 if name.endswith("_ns") else value
    timed = name.endswith("_ns") or name in _EPOCH_S or name.endswith(("_ts", "_at"))
    if not timed or not _EPOCH_MIN <= seconds <= _EPOCH_MAX:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _state_value(value: object, now: datetime) -> str:
    """A stored state value as words: its fields ``name value``, times as :func:`when` says them."""
    if not isinstance(value, dict):
        return json.dumps(value)
    parts = []
    for key, item in value.items():
        moment = _moment(str(key), item)
        if moment is not None:
            shown = when(moment, now)
        elif isinstance(item, list):
            shown = ", ".join(str(x) for x in item) or "none"
        elif isinstance(item, str):
            shown = item or '""'
        else:
            shown = json.dumps(item)
        parts.append(f"{key}={shown}")
    return ", ".join(parts) or "{}"


def render_state(state: dict[str, StateEntry], now: datetime) -> list[str]:
    """The state table, one key a line: its value, then when it was last written."""
    lines = ["state"]
    width = max((len(k) for k in state), default=0)
    for key, entry in state.items():
        updated = datetime.fromisoformat(entry["updated_at"])
        lines.append(f"  {key:<{width}}  {_state_value(entry['value'], now)}; written {when(updated, now)}")
    return lines


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def render_status(data: StoredStatus, *, verbose: bool = False, now: datetime | None = None) -> str:
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
    lines.append(f"markets   {data['markets']} stored")
    lines.append("rows      " + ", ".join(f"{k} {v}" for k, v in data["tables"].items()))
    lines.append(
        f"assets    {data['assets_tracked']} tracked" + (f", {len(data['assets'])} shown" if data["assets"] else "")
    )
    width = max((len(asset_name(a)) for a in data["assets"]), default=0)
    for a in data["assets"]:
        name = asset_name(a).ljust(width)
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
                f"    token {a['asset_id']}, levels {a.get('bid_levels', 0)}/{a.get('ask_levels', 0)}, "
                f"deltas since snapshot {a['deltas_since_snapshot']}"
            )
            trade = a.get("last_trade")
            if trade is not None:
                extra += f", last trade {trade['side'] or ''} {trade['size']} @ {trade['price']} ({_age(trade['age_s'])} ago)"
            lines.append(extra)
    state = data.get("state")
    if verbose and state:
        lines += render_state(state, now or datetime.now(UTC))
    return "\n".join(lines)
