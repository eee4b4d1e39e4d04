"""Database URLs, async engines and sessions.

Accepted URLs (anything else is a :class:`~core.errors.UsageError`):

- ``sqlite:///relative/or/absolute/path.db`` (or ``sqlite+aiosqlite:///...``); the parent
  directory is created on demand; ``sqlite://`` or ``sqlite:///:memory:`` is an in-memory DB;
- ``postgresql://user:pass@host:5432/db``, ``postgres://...`` or ``postgresql+asyncpg://...``.

Passwords never leave this module unmasked: use :func:`mask_url` for every message.
"""

from __future__ import annotations

import os
import re
import weakref
from pathlib import Path
from typing import Any, Literal

import msgspec
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.defaults import DB_URL_ENV, DEFAULT_DB_URL
from core.errors import PolybotError, UsageError

SQLITE_BUSY_TIMEOUT_MS = 10_000

SqliteSynchronous = Literal["NORMAL", "FULL"]
SQLITE_SYNCHRONOUS: SqliteSynchronous = "NORMAL"
"""SQLite's ``synchronous`` in WAL mode, for every file database (see :func:`create_engine`).

NORMAL (chosen): a commit is in the WAL before COMMIT returns, so it survives a crash of the
process, which is what the engine's write-ahead is for (intent rows committed before an order
leaves; a bot that dies before the venue answers finds them at restart and reconciles them). An
OS crash or power loss may lose the last commits (the WAL is synced at checkpoints): an order
posted just before would then have no row, and shows at reconciliation as a venue order or
trade we have no row for (``foreign``, unmatched) instead of being tracked. FULL syncs the WAL on
every commit: durable against both, for an fsync per commit on the path to the wire.

Measured with ``bench/engine.py --only groups`` (2 cores shared with other work; p50 / p99), a
10-leg group's rows in one commit on the engine's write-ahead connection
(:mod:`core.execution.sqlite_ahead`), load average ~1.4, two runs each: NORMAL 0.37 / 0.57 ms
against FULL 0.75-0.78 / 1.3-1.8 ms (one row: 0.17-0.19 / 0.31-0.36 against 0.53-0.58 / 0.8-1.0
ms; the in-memory store 0.03 ms). Through SQLAlchemy, before that connection existed: NORMAL
1.04-1.85 ms p50 against FULL 1.27-2.12, with FULL's fsync tails up to 40 ms p99 under load. FULL
doubles the write-ahead, the one database cost between a decision and the wire, and triples its
tail: too much for the OS crash or power loss it guards against, which reconciliation still
surfaces. A deployment that wants it passes ``sqlite_synchronous="FULL"`` to
:func:`create_engine`.
"""
PG_CONNECT_TIMEOUT_S = 10.0

_SYNCHRONOUS_OF: weakref.WeakKeyDictionary[object, SqliteSynchronous] = weakref.WeakKeyDictionary()

_SQLITE_DRIVERS = {"sqlite", "sqlite+aiosqlite"}
_PG_DRIVERS = {"postgresql", "postgres", "postgresql+asyncpg"}
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^/\s]*)@")


def default_db_url() -> str:
    """The URL used when none is given: ``$POLYBOT_DB__URL`` or :data:`DEFAULT_DB_URL`."""
    return os.environ.get(DB_URL_ENV) or DEFAULT_DB_URL


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and errors).

    A parsed URL is shown in the form the user writes (``sqlite:``/``postgresql:``), not
    with the async driver it was mapped to.
    """
    if isinstance(url, URL):
        return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(url))


def scrub(text: str, url: str | URL) -> str:
    """Remove the URL's password (and the raw URL) from an arbitrary message, e.g. a driver error."""
    raw = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    text = text.replace(raw, mask_url(raw))
    try:
        password = make_url(raw).password
    except ArgumentError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def parse_db_url(url: str | None) -> URL:
    """Map a user URL to its async-driver SQLAlchemy URL, or raise :class:`UsageError`."""
    text = (url or "").strip() or default_db_url()
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise UsageError(
            f"invalid database URL {mask_url(text)!r}: expected sqlite:///PATH or postgresql://..."
        ) from None
    except ValueError:  # SQLAlchemy's int() of a port that is not a number
        raise UsageError(
            f"invalid database URL {mask_url(text)!r}: the port must be a number from 1 to 65535"
        ) from None
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise UsageError(f"invalid database URL {mask_url(text)!r}: the port must be a number from 1 to 65535")
    driver = parsed.drivername.lower()
    if driver in _SQLITE_DRIVERS:
        parsed = parsed.set(drivername="sqlite+aiosqlite")
        if parsed.host or parsed.username or parsed.port:
            raise UsageError(
                f"invalid SQLite URL {mask_url(text)!r}: use sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        return parsed
    if driver in _PG_DRIVERS:
        if "@" in (parsed.host or ""):
            raise UsageError(f"invalid PostgreSQL URL {mask_url(text)!r}: percent-encode '@' in the password as %40")
        if not parsed.database:
            raise UsageError(
                f"PostgreSQL URL {mask_url(text)!r} names no database (postgresql://user@host:5432/DBNAME)"
            )
        return parsed.set(drivername="postgresql+asyncpg")
    raise UsageError(
        f"unsupported database URL {mask_url(text)!r}: use sqlite:///PATH or postgresql://user:pass@host:5432/db"
    )


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    if db.startswith("file:"):
        db = db[5:].split("?", 1)[0]
    return Path(db)


def _json_dumps(value: object) -> str:
    # msgspec writes Decimal as a JSON string, datetimes as RFC 3339: exact and portable
    return msgspec.json.encode(value).decode()


def create_engine(
    url: str | URL | None = None,
    *,
    echo: bool = False,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    sqlite_synchronous: SqliteSynchronous = SQLITE_SYNCHRONOUS,
    **kwargs: object,
) -> AsyncEngine:
    """An :class:`AsyncEngine` for ``url`` (any accepted form).

    SQLite: WAL journal with ``synchronous`` = :data:`SQLITE_SYNCHRONOUS` (or ``sqlite_synchronous``),
    ``busy_timeout``, foreign keys on, and real transactions (BEGIN emitted by SQLAlchemy, so DDL
    and SELECTs are transactional too). The directory of the file is
    created on demand. PostgreSQL: asyncpg, pre-ping, a bounded connect timeout. Extra keyword
    arguments go to SQLAlchemy's ``create_async_engine``.
    """
    parsed = url if isinstance(url, URL) else parse_db_url(url)
    options: dict[str, object] = {"echo": echo, "json_serializer": _json_dumps}
    if is_sqlite(parsed):
        path = sqlite_path(parsed)
        if path is not None:
            try:
                path.expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise PolybotError(f"cannot create the directory for {mask_url(parsed)}: {exc.strerror}") from None
    else:
        options["pool_pre_ping"] = True
        # asyncpg waits 60 s by default for an unreachable host; a CLI user should not
        options["connect_args"] = {"timeout": PG_CONNECT_TIMEOUT_S}
    options.update(kwargs)
    engine = create_async_engine(parsed, **options)
    if is_sqlite(parsed):
        if sqlite_synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"sqlite_synchronous must be NORMAL or FULL, got {sqlite_synchronous!r}")
        _sqlite_setup(
            engine,
            in_memory=sqlite_path(parsed) is None,
            busy_timeout_ms=busy_timeout_ms,
            synchronous=sqlite_synchronous,
        )
        _SYNCHRONOUS_OF[engine.sync_engine] = sqlite_synchronous
    return engine


def _sqlite_setup(engine: AsyncEngine, *, in_memory: bool, busy_timeout_ms: int, synchronous: str) -> None:
    from core.store.aiosqlite_close import adopt  # aiosqlite: imported by the engine's first connection anyway

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        adopt(dbapi_connection)  # a close that always ends (core/store/aiosqlite_close.py)
        # take transaction control away from the sqlite3 module (see SQLAlchemy's SQLite docs)
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        try:
            if not in_memory:
                # WAL: readers never block the writer, and a commit appends to the log (no
                # rollback-journal dance); the durability of a commit is SQLITE_SYNCHRONOUS's
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE_AT_BEGIN) else "BEGIN")


def sqlite_synchronous_of(engine: AsyncEngine) -> SqliteSynchronous:
    """The ``synchronous`` a SQLite engine made here runs with (another connection to its file must match it)."""
    return _SYNCHRONOUS_OF.get(engine.sync_engine, SQLITE_SYNCHRONOUS)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no implicit async refresh)."""
    return async_sessionmaker(engine, expire_on_commit=False)


_WRITE_AT_BEGIN = "polybot_sqlite_write_at_begin"
_WRITING: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]] = (
    weakref.WeakKeyDictionary()
)


def writing_sessions(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions for a transaction that reads, then writes what it read (an upsert).

    On SQLite such a transaction must take the write lock at BEGIN (``BEGIN IMMEDIATE``, which
    waits ``busy_timeout`` for its turn): begun deferred, it reads a snapshot, and if another
    connection (the feed writer) commits before its first write, SQLite refuses the upgrade at
    once with "database is locked", without waiting. Other databases: ``sessions`` unchanged."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        return sessions
    found = _WRITING.get(sessions)
    if found is None:
        found = _WRITING[sessions] = async_sessionmaker(
            bind.execution_options(**{_WRITE_AT_BEGIN: True}), expire_on_commit=False
        )
    return found


def driver_reason(exc: BaseException) -> str:
    """The driver's first line: a SQLAlchemy error's cause without the SQL and parameters it appends."""
    orig = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def connect_error(url: str | URL, exc: BaseException) -> PolybotError:
    """One readable line for a database that cannot be reached, naming the masked URL."""
    return PolybotError(f"cannot use database {mask_url(url)}: {scrub(driver_reason(exc), url)}")
