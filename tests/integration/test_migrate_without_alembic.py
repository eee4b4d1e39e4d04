"""The schema check needs no Alembic: the stamped revision is one query, the head is read from the
migration scripts; Alembic (and its INFO lines) appears only when a migration runs.

Alembic stays the one source of truth: the scripts' head read from their text must be the head
Alembic computes, and the stamped revision must be what Alembic's MigrationContext reads, on
SQLite and PostgreSQL, empty, behind and at head.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from core.errors import PolybotError
from core.store.db import create_engine
from core.store.migrate import (
    VERSIONS_DIR,
    alembic_config,
    alembic_head_revision,
    current_revision,
    ensure_schema,
    head_revision,
    scripted_head,
    upgrade_engine,
)
from polybot.cli.main import main
from tests.procs import run

pytestmark = pytest.mark.empty_db  # these tests watch migrations happen


def test_the_head_read_from_the_scripts_is_alembics_head() -> None:
    assert scripted_head() == alembic_head_revision() == head_revision()


def _script(directory: Path, name: str, revision: str, down: str) -> None:
    (directory / f"{name}.py").write_text(
        f'"""{name}"""\nfrom alembic import op\n\nrevision: str = "{revision}"\n'
        f"down_revision: str | None = {down}\nbranch_labels = None\n\n\ndef upgrade() -> None:\n    pass\n"
    )


def test_scripted_head_follows_a_plain_chain_in_any_file_order(tmp_path: Path) -> None:
    _script(tmp_path, "c_third", "0003", '"0002"')
    _script(tmp_path, "a_first", "0001", "None")
    _script(tmp_path, "b_second", "0002", '"0001"')
    assert scripted_head(tmp_path) == "0003"


@pytest.mark.parametrize(
    "scripts",
    [
        pytest.param([("a", "0001", "None"), ("b", "0002", '"0001"'), ("c", "0003", '"0001"')], id="branch"),
        pytest.param([("a", "0001", "None"), ("b", "0002", "None")], id="two-roots"),
        pytest.param([("a", "0001", "None"), ("b", "0002", '("0001", "0003")'), ("c", "0003", '"0001"')], id="merge"),
        pytest.param([("a", "0001", "None"), ("b", "0002", "PARENT")], id="not-a-literal"),
        pytest.param([("a", "0001", "None"), ("b", "0001", '"0001"')], id="duplicate"),
        pytest.param([("a", "0001", "None"), ("b", "0002", '"0009"')], id="unknown-parent"),
        pytest.param([], id="none"),
    ],
)
def test_scripted_head_declines_what_it_does_not_understand(
    tmp_path: Path, scripts: list[tuple[str, str, str]]
) -> None:
    """None means "ask Alembic": a wrong guess would call a database up to date when it is not."""
    for name, revision, down in scripts:
        _script(tmp_path, name, revision, down)
    assert scripted_head(tmp_path) is None


def test_the_shipped_scripts_are_read_without_alembic() -> None:
    assert any(VERSIONS_DIR.glob("*.py"))
    assert scripted_head() is not None  # no fall-back to Alembic for the scripts we ship


def _alembic_current(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


async def test_the_stamped_revision_is_what_alembic_reads(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_alembic_current) is None
        assert await current_revision(engine) is None

        def to_first(sync_conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "0001")

        def to_base(sync_conn: Connection) -> None:  # keeps alembic_version, without a row
            cfg = alembic_config()
            cfg.attributes["connection"] = sync_conn
            command.downgrade(cfg, "base")

        async with engine.begin() as conn:
            await conn.run_sync(to_first)
        async with engine.connect() as conn:
            assert await current_revision(engine) == "0001" == await conn.run_sync(_alembic_current)
        assert (await upgrade_engine(engine)).changed
        async with engine.connect() as conn:
            assert await current_revision(engine) == head_revision() == await conn.run_sync(_alembic_current)
        async with engine.begin() as conn:
            await conn.run_sync(to_base)
        async with engine.connect() as conn:
            assert await conn.run_sync(_alembic_current) is None
        assert await current_revision(engine) is None
    finally:
        await engine.dispose()


async def test_alembic_logs_only_when_a_migration_runs(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    engine = create_engine(sqlite_url)
    try:
        await ensure_schema(engine, sqlite_url, migrate=True)  # empty: migrates, Alembic says so
        assert any(r.name.startswith("alembic") for r in caplog.records)
        caplog.clear()
        await ensure_schema(engine, sqlite_url, migrate=True)  # at head: nothing to do, nothing said
        await ensure_schema(engine, sqlite_url, migrate=False)
        assert not (await upgrade_engine(engine)).changed
        assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
    finally:
        await engine.dispose()


_PROBE = """
import asyncio, json, sys
from core.store.db import create_engine
from core.store.migrate import current_revision, ensure_schema, head_revision, upgrade_engine

async def check(url):
    engine = create_engine(url)
    try:
        await ensure_schema(engine, url, migrate=True)
        await upgrade_engine(engine)
        return await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()

at_head = asyncio.run(check(sys.argv[1]))
print(json.dumps({"at_head": at_head, "alembic": sorted(m for m in sys.modules if m.split(".")[0] == "alembic")}))
"""


async def test_an_up_to_date_database_is_checked_without_importing_alembic(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()
    done = run([sys.executable, "-c", _PROBE, sqlite_url], timeout_s=60.0, check=True, text=True)
    assert json.loads(done.stdout) == {"at_head": True, "alembic": []}


async def test_the_schema_line_offers_migrate_only_to_a_command_that_has_it(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        with pytest.raises(PolybotError) as offered:
            await ensure_schema(engine, sqlite_url, migrate=False)
        with pytest.raises(PolybotError) as plain:
            await ensure_schema(engine, sqlite_url, migrate=False, migrate_flag=False)
    finally:
        await engine.dispose()
    assert str(offered.value).endswith("has no schema: run polybot migrate --apply first (or pass --migrate)")
    assert str(plain.value).endswith("has no schema: run polybot migrate --apply first")


def test_commands_without_migrate_are_not_told_to_pass_it(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["markets"], ["disarm", "--wait", "0.1"]):  # neither has --migrate
        assert main([*argv, "--db-url", sqlite_url]) == 1
        err = capsys.readouterr().err
        assert "run polybot migrate --apply first" in err and "--migrate" not in err.replace("migrate --apply", "")
