"""Alembic, run from inside the package: no alembic.ini in the working directory needed.

- :func:`offline_sql` renders the DDL for a URL's dialect without connecting.
- :func:`upgrade_to_head` migrates a database (a no-op when it is already at head).
- :func:`current_revision` reads the revision stamped in a database (None when empty).
- :func:`head_revision` is the newest revision the package ships.

Alembic itself (with Mako and Pygments, about half a second) is imported only when a migration
runs or SQL is rendered: every service start and every CLI command checks the schema, and that
check needs no Alembic. The stamped revision is one ``SELECT`` on ``alembic_version``; the head
is read from the migration scripts' own ``revision`` / ``down_revision`` lines
(:func:`scripted_head`), and whenever those lines are not the plain single chain that reading
understands, from Alembic (:func:`alembic_head_revision`, the one source of truth; a test checks
that both agree).
"""

from __future__ import annotations

import ast
import functools
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from core.store.db import create_engine, parse_db_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
VERSION_TABLE = "alembic_version"

# ``revision: str = "0005"`` / ``down_revision: str | Sequence[str] | None = "0004"`` at a line's start
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.MULTILINE)


def alembic_config(output_buffer: io.TextIOBase | None = None) -> Config:
    from alembic.config import Config

    cfg = Config(output_buffer=output_buffer)  # type: ignore[arg-type]  # alembic declares TextIO; any text stream works
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


def alembic_head_revision() -> str:
    """The head as Alembic computes it from the scripts (imports Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its revisions
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head


def _script_ids(source: str) -> tuple[str, str | None] | None:
    """(revision, down_revision) of one script, None when its lines are not the plain form."""
    found: dict[str, object] = {}
    for name, value in _ASSIGNMENT.findall(source):
        if name in found:
            return None
        try:
            found[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return None
    revision, down = found.get("revision"), found.get("down_revision", ...)
    if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
        return None  # a merge point (a tuple of parents), or a line this reading does not understand
    return revision, down


def scripted_head(versions_dir: Path = VERSIONS_DIR) -> str | None:
    """The head of the scripts in ``versions_dir`` read from their text, without Alembic.

    None unless the scripts form one plain chain (one root, no merge, no branch, no duplicate):
    the caller then asks Alembic."""
    parents: dict[str, str | None] = {}
    for path in sorted(versions_dir.glob("*.py")):
        ids = _script_ids(path.read_text(encoding="utf-8"))
        if ids is None or ids[0] in parents:
            return None
        parents[ids[0]] = ids[1]
    children = [down for down in parents.values() if down is not None]
    heads = set(parents) - set(children)
    roots = [rev for rev, down in parents.items() if down is None]
    chained = len(children) == len(set(children)) and set(children) <= set(parents)
    if len(heads) != 1 or len(roots) != 1 or not chained:
        return None
    return heads.pop()


@functools.cache
def head_revision() -> str:
    """The newest revision the package ships: read from the scripts, Alembic only when they are unusual."""
    return scripted_head() or alembic_head_revision()


def offline_sql(url: str | URL | None) -> str:
    """The DDL (CREATE TABLE ... up to head) for the URL's dialect. Never connects."""
    from alembic import command

    parsed = url if isinstance(url, URL) else parse_db_url(url)
    buf = io.StringIO()
    cfg = alembic_config(output_buffer=buf)
    cfg.attributes["dialect_name"] = parsed.get_backend_name()
    command.upgrade(cfg, "head", sql=True)
    return buf.getvalue()


def _current(sync_conn: Connection) -> str | None:
    """The revision in ``alembic_version`` (what Alembic's ``get_current_revision`` reads), None when
    there is no such table or no row; more than one row (a branched database) is an error."""
    if not inspect(sync_conn).has_table(VERSION_TABLE):
        return None
    stamped = list(sync_conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    if len(stamped) > 1:
        raise RuntimeError(f"{VERSION_TABLE} holds more than one revision ({', '.join(map(str, stamped))})")
    return str(stamped[0]) if stamped else None


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
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def upgrade_engine(engine: AsyncEngine) -> MigrateResult:
    """Migrate to head; Alembic is imported (and logs) only when there is something to apply."""
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


async def ensure_schema(engine: AsyncEngine, url: str, *, migrate: bool, migrate_flag: bool = True) -> None:
    """Stop with a clear line unless the schema is at head (or apply migrations when asked to).

    ``migrate_flag``: the command has a ``--migrate`` option, which the line then offers."""
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
    offer = " (or pass --migrate)" if migrate_flag else ""
    raise PolybotError(f"database {mask_url(url)} {state}: run polybot migrate --apply first{offer}")
