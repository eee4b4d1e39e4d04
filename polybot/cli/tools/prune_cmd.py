"""``polybot prune``: apply the feed tables' retention (``[db.retention]``) now, or say what it would remove."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import PolybotError
from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from core.settings.retention import RetentionSettings
    from core.store.retention import TablePlan
    from polybot.cli.main import Subcommands


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "prune",
        help="remove feed rows older than the retention windows ([db.retention]); --dry-run only says what",
        description=(
            "Apply [db.retention] to book_snapshots, book_deltas and trades now, as the service's job does:\n"
            "rows older than each table's window go in small batches (PostgreSQL: whole day partitions\n"
            "are dropped), old snapshots are thinned to one per asset per bucket. The running service\n"
            "keeps writing meanwhile. --dry-run counts what would go and removes nothing."
        ),
        example="polybot prune --config var/sandbox/service.toml --dry-run  # while polybot sandbox runs",
    )
    p.add_argument(
        "--config", metavar="FILE", default=None, help="service TOML with [db.retention] (default: defaults)"
    )
    p.add_argument(
        "--db-url",
        type=common.db_url,
        default=None,
        help="database URL, sqlite:///PATH or postgresql://user:pass@host:5432/db (default: the config's db.url)",
    )
    p.add_argument("--dry-run", action="store_true", help="say per table what would be removed; remove nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    from core.settings import load_settings

    settings = load_settings(args.config).settings  # ConfigError: exit 2 with every problem listed
    url = args.db_url or settings.db.url
    plans = asyncio.run(_prune(url, settings.db.retention, dry_run=args.dry_run, quiet=args.json))
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "tables": [_as_dict(p) for p in plans]}, indent=2))
        return 0
    print("dry run: nothing removed; a prune now would remove:" if args.dry_run else "removed:")
    for plan in plans:
        print(_line(plan))
    return 0


async def _prune(url: str, retention: RetentionSettings, *, dry_run: bool, quiet: bool) -> list[TablePlan]:
    from sqlalchemy.exc import DBAPIError

    from core.store.db import connect_error, create_engine, is_sqlite, mask_url, parse_db_url, sqlite_path
    from core.store.retention import Pruner

    path = sqlite_path(parse_db_url(url)) if is_sqlite(parse_db_url(url)) else None
    if path is not None and not path.expanduser().exists():  # never create an empty file just to prune it
        raise PolybotError(f"database {mask_url(url)} does not exist ({path})")

    progress = common.Progress()

    def tell(table: str, what: str, rows: int) -> None:
        progress.update(f"{table}: {rows:,} rows {what}")

    engine = create_engine(url)
    try:
        await _at_head(engine, url)
        pruner = Pruner(engine, retention, progress=None if quiet else tell)
        if dry_run:
            return await pruner.plan()
        if not quiet:
            sys.stderr.write(f"pruning the feed tables of {mask_url(url)} ...\n")
        return await pruner.run()
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise connect_error(url, exc) from None
    finally:
        progress.done()
        await engine.dispose()


async def _at_head(engine: AsyncEngine, url: str) -> None:
    from core.store.db import mask_url
    from core.store.migrate import current_revision, head_revision

    current, head = await current_revision(engine), head_revision()
    if current != head:
        state = "has no schema" if current is None else f"is at revision {current}, not {head}"
        raise PolybotError(f"database {mask_url(url)} {state}: run polybot migrate --apply first")


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _as_dict(plan: TablePlan) -> dict[str, Any]:
    return {
        "table": plan.table,
        "keep_days": plan.keep_days,
        "delete_before": _when(plan.delete_before_ns),
        "rows": plan.rows,
        "partitions": list(plan.partitions),
        "partition_rows": plan.partition_rows,
        "thinned_rows": plan.thin_rows,
        "thin_every_minutes": plan.thin.every_minutes if plan.thin else None,
        "removes": plan.removes,
        "oldest_kept": _when(plan.oldest_kept_ns),
        "newest_kept": _when(plan.newest_kept_ns),
    }


def _line(plan: TablePlan) -> str:
    window = "kept forever" if plan.delete_before_ns is None else f"rows before {_when(plan.delete_before_ns)}"
    parts = [f"{plan.rows:,} rows"]
    if plan.partitions:
        parts.append(f"{len(plan.partitions)} day partitions ({plan.partition_rows:,} rows)")
    if plan.thin is not None:
        parts.append(f"{plan.thin_rows:,} snapshots thinned to one per asset per {plan.thin.every_minutes} min")
    kept = f"kept {_when(plan.oldest_kept_ns)} .. {_when(plan.newest_kept_ns)}"
    return f"  {plan.table:<15} {window}: {' + '.join(parts)}; {kept}"
