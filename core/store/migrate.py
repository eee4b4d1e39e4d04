"""Alembic, run from inside the package: no alembic.ini in the working directory needed.

- :func:`offline_sql` renders the DDL for a URL's dialect without connecting.
- :func:`upgrade_to_head` migrates a database (a no-op when it is already at head).
- :func:`current_revision` reads the revision stamped in a database (None when empty).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from core.store.db import create_engine, parse_db_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


def alembic_config(output_buffer: io.TextIOBase | None = None) -> Config:
    cfg = Config(output_buffer=output_buffer)  # type: ignore[arg-type]  # alembic declares TextIO; any text stream works
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its revisions
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head


def offline_sql(url: str | URL | None) -> str:
    """The DDL (CREATE TABLE ... up to head) for the URL's dialect. Never connects."""
    parsed = url if isinstance(url, URL) else parse_db_url(url)
    buf = io.StringIO()
    cfg = alembic_config(output_buffer=buf)
    cfg.attributes["dialect_name"] = parsed.get_backend_name()
    command.upgrade(cfg, "head", sql=True)
    return buf.getvalue()


def _current(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


def _user_tables(sync_conn: Connection) -> list[str]:
    return sorted(t for t in inspect(sync_conn).get_table_names() if t != VERSION_TABLE)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def user_tables(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(_user_tables)


@dataclass(frozen=True, slots=True)
class MigrateResult:
    before: str | None
    after: str
    changed: bool


def _upgrade(sync_conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def upgrade_engine(engine: AsyncEngine) -> MigrateResult:
    head = head_revision()
    before = await current_revision(engine)
    if before == head:
        return MigrateResult(before=before, after=head, changed=False)
    async with engine.begin() as conn:  # one transaction: all of the DDL or none (both backends)
        await conn.run_sync(_upgrade)
    after = await current_revision(engine)
    if after != head:  # pragma: no cover - would be an Alembic/env bug
        raise RuntimeError(f"migration ended at {after}, expected head {head}")
    return MigrateResult(before=before, after=after, changed=True)


async def upgrade_to_head(url: str | URL | None) -> MigrateResult:
    """Migrate the database at ``url`` to head (creating the SQLite file if needed)."""
    engine = create_engine(url)
    try:
        return await upgrade_engine(engine)
    finally:
        await engine.dispose()


async def ensure_schema(engine: AsyncEngine, url: str, *, migrate: bool) -> None:
    """Stop with a clear line unless the schema is at head (or apply migrations when asked to)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.errors import PolybotError
    from core.store.db import connect_error, mask_url

    try:
        current = await current_revision(engine)
    except (OSError, SQLAlchemyError) as exc:
        raise connect_error(url, exc) from None
    head = head_revision()
    if current == head:
        return
    if migrate:
        await upgrade_engine(engine)
        return
    state = "has no schema" if current is None else f"is at revision {current}, not {head}"
    raise PolybotError(f"database {mask_url(url)} {state}: run polybot migrate --apply first (or pass --migrate)")
