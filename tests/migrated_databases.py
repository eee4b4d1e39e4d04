"""Databases already at the schema's head, for ``db_url``: reset or copied per test, not migrated.

Measured per PostgreSQL storage test (server CPU): creating, migrating and dropping a database
cost ~0.55 s, a copy of a migrated template ~0.35 s (``CREATE DATABASE`` writes every block of it
to the WAL), ``TRUNCATE`` of every table ~0.14 s (new files for each partition and index); two
hundred tests made the server the suite's largest consumer of CPU after the tests themselves.
So each test worker migrates one PostgreSQL database, the first time a test asks, and empties it
before each later test: rows deleted, identities restarted, partitions made since removed, stray
connections ended. If a test changed the schema itself (anything its catalog fingerprint shows),
the database is dropped and migrated again. SQLite's migration (~45 ms of CPU) is done once per
worker too, and each test gets a copy of the file.

Tests that watch a migration happen start from an empty database instead:
``@pytest.mark.empty_db`` (the migration tests, status of an unmigrated database, ...).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg

_FINGERPRINT = """
SELECT count(*), coalesce(sum(c.relnatts), 0), coalesce(sum(hashtext(n.nspname || '.' || c.relname)), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%'
  AND n.nspname NOT LIKE 'pg_toast_temp%'
"""
_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = 'public' AND c.relname <> 'alembic_version'
"""
_PARTITIONS = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relispartition
"""
_RESTART_SEQUENCES = "SELECT setval(seqrelid, seqstart, false) FROM pg_sequence"


class MigratedDatabases:
    """One worker's migrated databases, made on first use, dropped at the end of the session."""

    def __init__(self, scratch: Path, admin_url: str, pg_url_of: Callable[[str], str]) -> None:
        self._scratch = scratch
        self._admin_url = admin_url
        self._pg_url_of = pg_url_of
        self._sqlite: Path | None = None
        self._pg: _ResettablePg | None = None

    def copy_sqlite(self, to: Path) -> None:
        if self._sqlite is None:
            path = self._scratch / "migrated.db"
            _migrate(f"sqlite:///{path}")
            self._sqlite = path
        shutil.copyfile(self._sqlite, to)

    def pg_at_head(self) -> str:
        """The URL of this worker's PostgreSQL database, at head and empty."""
        if self._pg is not None and not asyncio.run(self._pg.reset()):
            pg_admin(self._admin_url, f'DROP DATABASE IF EXISTS "{self._pg.name}" WITH (FORCE)')
            self._pg = None
        if self._pg is None:
            name = f"polybot_test_worker_{uuid.uuid4().hex[:12]}"
            pg_admin(self._admin_url, f'CREATE DATABASE "{name}"')
            _migrate(self._pg_url_of(name))
            self._pg = asyncio.run(_ResettablePg.survey(name, self._pg_url_of(name)))
        return self._pg.url

    def close(self) -> None:
        if self._pg is not None:
            pg_admin(self._admin_url, f'DROP DATABASE IF EXISTS "{self._pg.name}" WITH (FORCE)')
            self._pg = None


class _ResettablePg:
    def __init__(self, name: str, url: str, fingerprint: tuple[int, ...], tables: list[str], partitions: set[str]):
        self.name, self.url = name, url
        self._fingerprint, self._tables, self._partitions = fingerprint, tables, partitions

    @classmethod
    async def survey(cls, name: str, url: str) -> _ResettablePg:
        conn = await asyncpg.connect(url)
        try:
            fingerprint = tuple(await conn.fetchrow(_FINGERPRINT))
            tables = [r[0] for r in await conn.fetch(_TABLES)]
            partitions = {r[0] for r in await conn.fetch(_PARTITIONS)}
        finally:
            await conn.close()
        return cls(name, url, fingerprint, tables, partitions)

    async def reset(self) -> bool:
        """Empty the database as migrated; False when its schema is no longer the migrated one."""
        conn = await asyncpg.connect(self.url)
        try:
            # a process of the last test that is still connected would hold locks, or write on
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            for extra in {r[0] for r in await conn.fetch(_PARTITIONS)} - self._partitions:
                await conn.execute(f"DROP TABLE IF EXISTS {extra}")
            if tuple(await conn.fetchrow(_FINGERPRINT)) != self._fingerprint:
                return False
            async with conn.transaction():
                # foreign keys are not checked while every table is emptied (any order will do)
                await conn.execute("SET LOCAL session_replication_role = replica")
                for table in self._tables:
                    await conn.execute(f"DELETE FROM {table}")
                await conn.execute(_RESTART_SEQUENCES)
            return True
        finally:
            await conn.close()


def pg_admin(admin_url: str, sql: str) -> None:
    """One statement on the admin database (CREATE/DROP DATABASE), on its own connection."""

    async def run() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _migrate(url: str) -> None:
    from core.store.migrate import upgrade_to_head

    asyncio.run(upgrade_to_head(url))
