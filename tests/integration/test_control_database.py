"""The control facade's via-database transport (a face outside the service) on SQLite and PostgreSQL.

Health is judged by the same definition as in the running service; a CLI request is audited by
the same writer as a Telegram command (typed secrets masked); what only the running service can
answer is refused in one line instead of guessed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from core.control.facade import Control
from core.control.types import ControlError
from core.errors import PolybotError
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_to_head
from core.store.models import Alert, CommandAudit, ControlRequest
from core.store.writer import BatchedWriter
from polybot.cli.main import main
from tests.secret_shapes import PRIVATE_KEY, assert_no_secret

ASSET = "7" * 77


async def _seed(url: str, alerts: list[dict[str, object]]) -> None:
    """A migrated database with one fresh book and these alert rows."""
    await upgrade_to_head(url)
    engine = create_engine(url)
    try:
        async with BatchedWriter(engine) as writer:
            writer.put(
                "book_snapshots",
                {
                    "asset_id": ASSET,
                    "market": "0xm",
                    "bids": [["0.40", "100"]],
                    "asks": [["0.60", "10"]],
                    "receive_ts": time.time_ns(),
                },
            )
        async with session_factory(engine)() as s, s.begin():
            s.add_all(Alert(**row) for row in alerts)
    finally:
        await engine.dispose()


async def test_health_over_the_database_counts_standing_alerts_only(db_url: str) -> None:
    now = datetime.now(UTC)
    await _seed(
        db_url,
        [
            {
                "kind": "feed_dead",
                "severity": "critical",
                "key": "ws#0",
                "message": "market feed connection ws#0 is dead",
            },
            {"kind": "service", "severity": "info", "key": "start", "message": "Polybot started"},
            {"kind": "order_failed", "severity": "warning", "key": "c1", "message": "order c1 failed"},
            {"kind": "book_inconsistent", "severity": "warning", "key": "a", "message": "old", "resolved_at": now},
        ],
    )
    report = await Control.over_database(db_url).health(staleness_ms=600_000)
    assert not report.ok
    assert report.reasons == ["open alert feed_dead: market feed connection ws#0 is dead"]


async def test_health_over_the_database_of_a_quiet_feed(db_url: str) -> None:
    await _seed(db_url, [])
    control = Control.over_database(db_url)
    assert (await control.health(staleness_ms=600_000)).ok
    await asyncio.sleep(0.01)
    stale = await control.health(staleness_ms=1)
    assert stale.reasons == ["1 of 1 asset(s) not updated within 1 ms"]


def test_a_cli_request_is_audited_with_typed_secrets_masked(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(upgrade_to_head(db_url))
    reason = f"pasted my key {PRIVATE_KEY} by mistake"
    assert main(["disarm", "--db-url", db_url, "--wait", "0.2", "--reason", reason]) == 1  # no service: expires
    assert "expired" in capsys.readouterr().err

    async def rows() -> tuple[CommandAudit, ControlRequest]:
        engine = create_engine(db_url)
        try:
            async with session_factory(engine)() as s:
                audit = (await s.execute(select(CommandAudit))).scalars().one()
                request = (await s.execute(select(ControlRequest))).scalars().one()
                return audit, request
        finally:
            await engine.dispose()

    audit, request = asyncio.run(rows())
    assert (audit.front_end, audit.command, audit.result) == ("cli", "disarm", "requested")
    assert audit.detail == f"control request {request.id}"
    assert audit.arguments.startswith("pasted my key ") and audit.arguments.endswith(" by mistake")
    assert_no_secret(audit.arguments)
    assert_no_secret(request.reason)


async def test_what_only_the_running_service_knows_is_refused_in_one_line(sqlite_url: str) -> None:
    control = Control.over_database(sqlite_url)
    for ask in (control.status(), control.arm("cli:x"), control.quotes(), control.orders(), control.preflight()):
        with pytest.raises(ControlError) as refused:
            await ask
        assert refused.value.reason_code == "unavailable"
    with pytest.raises(PolybotError, match="has no schema: run polybot migrate --apply first"):
        await control.stored_markets()
    listing_free = await control.stored_status()
    assert listing_free["empty"] is True
