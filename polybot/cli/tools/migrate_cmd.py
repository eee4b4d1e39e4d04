"""``polybot migrate``: create or upgrade the database schema, print its DDL, or show its revision."""

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

    from polybot.cli.main import Subcommands

EMPTY = "empty database (no schema)"


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "migrate",
        help="create or upgrade the database schema (Alembic), print its DDL, or show its revision",
        example="polybot migrate --db-url sqlite:///var/polybot.db --apply",
    )
    p.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--apply", action="store_true", help="migrate the database to the latest revision (head)")
    action.add_argument(
        "--print-sql", action="store_true", help="print the DDL for the URL's dialect without connecting"
    )
    action.add_argument("--current", action="store_true", help="print the database's current revision")
    p.add_argument("--json", action="store_true", help="machine-readable output (--apply, --current)")
    p.set_defaults(func=run_migrate)


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
