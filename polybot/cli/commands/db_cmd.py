"""``polybot migrate`` and ``polybot status``: the database's schema and what it holds."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# Kept literal (not imported from core.store.db) so `polybot --help` does not load SQLAlchemy.
DB_URL_ENV = "POLYBOT_DB__URL"
DEFAULT_DB_URL = "sqlite:///./var/polybot.db"

EMPTY = "empty database (no schema)"
_DB_URL_HELP = (
    f"database URL (default: ${DB_URL_ENV} or {DEFAULT_DB_URL}); sqlite:///PATH or postgresql://user:pass@host:5432/db"
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = add_command(
        sub,
        "migrate",
        help="create or upgrade the database schema (Alembic), print its DDL, or show its revision",
        example="polybot migrate --db-url postgresql://postgres@127.0.0.1:5432/polybot --apply",
    )
    p.add_argument("--db-url", type=common.db_url, default=None, help=_DB_URL_HELP)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--apply", action="store_true", help="migrate the database to the latest revision (head)")
    action.add_argument(
        "--print-sql", action="store_true", help="print the DDL for the URL's dialect without connecting"
    )
    action.add_argument("--current", action="store_true", help="print the database's current revision")
    p.add_argument("--json", action="store_true", help="machine-readable output (--apply, --current)")
    p.set_defaults(func=run_migrate)

    s = add_command(
        sub,
        "status",
        help="schema revision, row counts, tracked assets with top of book and age, armed state",
        example="polybot status --db-url sqlite:///./var/polybot.db --json",
    )
    s.add_argument("--db-url", type=common.db_url, default=None, help=_DB_URL_HELP)
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.add_argument("--verbose", dest="status_verbose", action="store_true", help="add levels, last trades, state")
    s.add_argument(
        "--limit", type=common.count_or_zero, default=50, metavar="N", help="show at most N assets (default 50)"
    )
    s.set_defaults(func=run_status)


# -- migrate -------------------------------------------------------------------------------------


def run_migrate(args: argparse.Namespace) -> int:
    from core.store.db import parse_db_url
    from core.store.migrate import offline_sql

    url = parse_db_url(args.db_url)
    if args.print_sql:
        sys.stdout.write(offline_sql(url))
        return 0
    if args.current:
        info = asyncio.run(_current(url))
        if args.json:
            print(json.dumps(info))
        else:
            print(info["message"])
        return 0
    result = asyncio.run(_apply(url))
    if args.json:
        print(json.dumps(result))
    else:
        print(result["message"])
    return 0


async def _current(url: URL) -> dict[str, Any]:
    from sqlalchemy.exc import DBAPIError

    from core.store.db import connect_error, create_engine, is_sqlite, sqlite_path
    from core.store.migrate import current_revision as read_revision
    from core.store.migrate import head_revision, user_tables

    head = head_revision()
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None and not path.expanduser().exists():
            return {"revision": None, "head": head, "empty": True, "message": f"{EMPTY}: {path} does not exist"}
    engine = create_engine(url)
    try:
        revision = await read_revision(engine)
        tables = await user_tables(engine) if revision is None else []
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise connect_error(url, exc) from None
    finally:
        await engine.dispose()
    if revision is None:
        message = EMPTY if not tables else f"no schema revision stamped, but {len(tables)} tables exist"
    elif revision == head:
        message = f"{revision} (head)"
    else:
        message = f"{revision} (head is {head}: run polybot migrate --apply)"
    return {"revision": revision, "head": head, "empty": revision is None and not tables, "message": message}


async def _apply(url: URL) -> dict[str, Any]:
    from sqlalchemy.exc import DBAPIError

    from core.store.db import connect_error, create_engine
    from core.store.migrate import upgrade_engine

    engine = create_engine(url)
    try:
        res = await upgrade_engine(engine)
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise connect_error(url, exc) from None
    finally:
        await engine.dispose()
    if res.changed:
        message = f"migrated from {res.before or 'empty'} to {res.after} (head)"
    else:
        message = f"schema already at head ({res.after}): nothing to do"
    return {"before": res.before, "after": res.after, "changed": res.changed, "message": message}


# -- status --------------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    from core.store.status import gather_status

    data = asyncio.run(gather_status(args.db_url, max_assets=args.limit, verbose=args.status_verbose))
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


def render_status(data: dict[str, Any], *, verbose: bool = False) -> str:
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
        lines.append(f"note      {data['note']}")
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
            extra = f"    levels {a.get('bid_levels', 0)}/{a.get('ask_levels', 0)}, deltas since snapshot {a['deltas_since_snapshot']}"
            if "last_trade" in a:
                t = a["last_trade"]
                extra += f", last trade {t['side'] or ''} {t['size']} @ {t['price']} ({_age(t['age_s'])} ago)"
            lines.append(extra)
    if verbose and data.get("state"):
        lines.append("state     " + ", ".join(f"{k}={json.dumps(v['value'])}" for k, v in data["state"].items()))
    return "\n".join(lines)
