"""``polybot prune`` on real SQLite and PostgreSQL: --dry-run says what would go and removes
nothing; without it the same rows go, and a second dry run finds nothing left."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.store.db import create_engine
from core.store.migrate import upgrade_to_head
from polybot.cli.main import main
from tests.integration.retention_rows import ago, count, insert


async def _fill(db_url: str) -> None:
    await upgrade_to_head(db_url)
    engine = create_engine(db_url)
    try:
        await insert(engine, "book_deltas", [ago(d, minutes=i) for d in (1, 9) for i in range(30)])
        await insert(engine, "trades", [ago(d, minutes=i) for d in (1, 100) for i in range(10)])
    finally:
        await engine.dispose()


async def _counts(db_url: str) -> tuple[int, int]:
    engine = create_engine(db_url)
    try:
        return await count(engine, "book_deltas"), await count(engine, "trades")
    finally:
        await engine.dispose()


def _tables(out: str) -> dict[str, dict[str, object]]:
    return {t["table"]: t for t in json.loads(out)["tables"]}


def test_prune_dry_run_then_prune(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_fill(db_url))
    assert main(["prune", "--dry-run", "--json", "--db-url", db_url]) == 0
    plan = _tables(capsys.readouterr().out)
    assert plan["book_deltas"]["removes"] == 30 and plan["trades"]["removes"] == 10
    assert asyncio.run(_counts(db_url)) == (60, 20)  # a dry run removes nothing

    assert main(["prune", "--db-url", db_url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed:") and "book_deltas" in out
    assert asyncio.run(_counts(db_url)) == (30, 10)
    assert main(["prune", "--dry-run", "--json", "--db-url", db_url]) == 0
    assert all(t["removes"] == 0 for t in _tables(capsys.readouterr().out).values())


def test_prune_refuses_a_database_without_the_schema(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "--dry-run", "--db-url", f"sqlite:///{tmp_path}/missing.db"]) == 1
    assert "does not exist" in capsys.readouterr().err
