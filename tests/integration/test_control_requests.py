"""``polybot disarm`` / ``polybot kill`` reach a running service through its database, once or never.

Real services (core.service.Service) and real SQLite / PostgreSQL databases. The service's
staleness job is also called directly (``job_staleness``) so "nothing ran" is checked after the
handler has certainly looked at the table, not after a sleep.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import core.control.requests as cr
from core.control.types import ActionResult
from core.service import Service, ServiceOptions
from core.settings import load_settings
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_to_head
from core.store.models import CommandAudit, ControlRequest
from polybot.cli.main import main

CLI_BY = f"cli:{getpass.getuser()}"


async def _service(url: str) -> Service:
    env = {"POLYBOT_DB__URL": url, "POLYBOT_TELEGRAM__ENABLED": "false", "POLYBOT_METRICS__ENABLED": "false"}
    service = Service(load_settings(None, env=env), ServiceOptions(migrate=True, staleness_tick_s=0.1))
    await service.start()
    return service


@asynccontextmanager
async def _running(url: str) -> AsyncIterator[Service]:
    service = await _service(url)
    try:
        yield service
    finally:
        await service.stop()


@asynccontextmanager
async def _sessions(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def _requests(url: str) -> list[ControlRequest]:
    async with _sessions(url) as sessions, sessions() as s:
        return list((await s.execute(select(ControlRequest).order_by(ControlRequest.id))).scalars())


async def _until(cond: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _armed(service: Service) -> None:
    assert (await service.control.arm("test")).ok and service.risk.armed


class RecordingControl:
    """Stands in for core.control.Control where only the calls matter (which, in what order)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def kill(self, by: str) -> ActionResult:
        self.calls.append(("kill", by))
        return ActionResult(True, "killed: disarmed, 0 order(s) canceled")

    async def disarm(self, by: str, reason: str = "") -> ActionResult:
        self.calls.append(("disarm", reason))
        return ActionResult(True, "disarmed: no new orders will be placed")


# ---- the CLI against a running service ---------------------------------------------------------


@pytest.mark.parametrize("action", ["disarm", "kill"])
async def test_cli_request_runs_once_in_the_running_service(
    db_url: str, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with _running(db_url) as service:
        await _armed(service)
        code = await asyncio.to_thread(main, [action, "--db-url", db_url, "--wait", "20", "--reason", "drill"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert not service.risk.armed
        assert out.startswith(f"{action}: ") and ("killed" in out if action == "kill" else "disarmed" in out)
        assert service.instance_name in out
        [req] = await _requests(db_url)
        assert (req.action, req.status, req.ok, req.handled_by) == (action, "done", True, service.instance_name)
        assert req.requested_by == CLI_BY and req.reason == "drill" and req.handled_at is not None
        # handled once: armed again, a further poll of the table does nothing
        await _armed(service)
        await service.job_staleness()
        assert service.risk.armed
    async with _sessions(db_url) as sessions, sessions() as s:
        audit = (await s.execute(select(CommandAudit).where(CommandAudit.front_end == "cli"))).scalars().one()
    assert (audit.command, audit.result, audit.detail) == (action, "requested", f"control request {req.id}")


async def test_unacknowledged_request_expires_and_a_later_service_runs_nothing(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with _running(db_url):  # life 1: creates the schema, then stops
        pass
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["disarm", "--db-url", db_url, "--wait", "0.5"])
    err = capsys.readouterr().err
    assert code == 1
    assert "expired: no running service acknowledged it within 0.5s; nothing was done" in err
    [req] = await _requests(db_url)
    assert (req.status, req.ok, req.handled_by) == ("expired", False, CLI_BY)

    async with _running(db_url) as service:  # life 2, started after the request expired
        await _armed(service)
        await service.job_staleness()
        await service.job_staleness()
        assert service.risk.armed
    assert [(r.status, r.handled_by) for r in await _requests(db_url)] == [("expired", CLI_BY)]


async def test_acknowledged_request_is_not_rerun_by_the_next_start(db_url: str) -> None:
    async with _running(db_url) as first:
        await _armed(first)
        assert await asyncio.to_thread(main, ["kill", "--db-url", db_url, "--wait", "20"]) == 0
        assert not first.risk.armed
        first_name = first.instance_name
    async with _running(db_url) as second:
        await _armed(second)
        await second.job_staleness()
        await second.job_staleness()
        assert second.risk.armed
    [req] = await _requests(db_url)
    assert (req.status, req.handled_by) == ("done", first_name)


async def test_two_services_on_one_database_exactly_one_claims(db_url: str) -> None:
    async with _running(db_url) as one, _running(db_url) as two:
        await _armed(one)
        await _armed(two)
        async with _sessions(db_url) as sessions:
            req = await cr.post_request(sessions, "kill", "cli:test", "both running", 30)
            # both staleness jobs (and their background ticks) go for the same request at once
            await asyncio.gather(one.job_staleness(), two.job_staleness())

            async def done() -> bool:
                row = await cr.get_request(sessions, req.id)
                return row is not None and row.status == "done"

            await _until(done, "the kill request to be done")
            row = await cr.get_request(sessions, req.id)
        assert row is not None and row.handled_by in {one.instance_name, two.instance_name}
        winner, loser = (one, two) if row.handled_by == one.instance_name else (two, one)
        assert not winner.risk.armed
        assert loser.risk.armed  # the other service did not kill too


# ---- the claim rule itself -------------------------------------------------------------------


async def test_many_claimants_on_separate_engines_exactly_one_wins(db_url: str) -> None:
    await upgrade_to_head(db_url)
    engines = [create_engine(db_url) for _ in range(12)]
    try:
        makers = [session_factory(e) for e in engines]
        req = await cr.post_request(makers[0], "disarm", "cli:test", "race", 60)
        start = asyncio.Event()

        async def claimant(i: int) -> bool:
            await start.wait()
            if i == 0:  # the CLI giving up races the services too
                return await cr.expire_request(makers[i], req.id, "cli:test", 60)
            return await cr.claim(makers[i], req.id, f"svc-{i}")

        tasks = [asyncio.create_task(claimant(i)) for i in range(len(makers))]
        await asyncio.sleep(0)
        start.set()
        wins = [i for i, won in enumerate(await asyncio.gather(*tasks)) if won]
        assert len(wins) == 1, wins
        row = await cr.get_request(makers[1], req.id)
        assert row is not None
        expected = ("expired", "cli:test") if wins[0] == 0 else ("claimed", f"svc-{wins[0]}")
        assert (row.status, row.handled_by) == expected
        # nothing can move it again
        assert not await cr.claim(makers[2], req.id, "late")
        assert not await cr.expire_request(makers[3], req.id, "cli:late", 60)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_service_never_claims_an_expired_request_and_runs_the_rest_oldest_first(db_url: str) -> None:
    await upgrade_to_head(db_url)
    control = RecordingControl()
    async with _sessions(db_url) as sessions:
        stale = await cr.post_request(sessions, "kill", "cli:a", "stale", 0)  # its CLI died before withdrawing it
        first = await cr.post_request(sessions, "disarm", "cli:b", "first", 60)
        second = await cr.post_request(sessions, "kill", "cli:c", "second", 60)

        async def past_expiry() -> bool:
            async with sessions() as s:
                return await cr.db_now(s) > stale.expires

        await _until(past_expiry, "the database clock to pass the stale request's expiry")
        assert not await cr.claim(sessions, stale.id, "svc-0")  # past expires: not claimable, still pending
        ran = await cr.handle_pending_requests(sessions, control, handled_by="svc-1")
        assert ran == [first.id, second.id]
        assert control.calls == [("disarm", "first"), ("kill", "cli:c")]
        assert await cr.handle_pending_requests(sessions, control, handled_by="svc-2") == []
        assert len(control.calls) == 2
    rows = {r.id: r for r in await _requests(db_url)}
    assert (rows[stale.id].status, rows[stale.id].result) == ("expired", cr.EXPIRED_BY_SERVICE)
    assert [(rows[i].status, rows[i].handled_by, rows[i].ok) for i in (first.id, second.id)] == [
        ("done", "svc-1", True),
        ("done", "svc-1", True),
    ]


async def test_a_failing_action_is_recorded_and_not_rerun(db_url: str) -> None:
    await upgrade_to_head(db_url)

    class Broken(RecordingControl):
        async def kill(self, by: str) -> ActionResult:
            self.calls.append(("kill", by))
            raise RuntimeError("venue unreachable")

    control = Broken()
    async with _sessions(db_url) as sessions:
        req = await cr.post_request(sessions, "kill", "cli:a", "x", 60)
        assert await cr.handle_pending_requests(sessions, control, handled_by="svc") == [req.id]
        assert await cr.handle_pending_requests(sessions, control, handled_by="svc") == []
        row = await cr.get_request(sessions, req.id)
    assert control.calls == [("kill", "cli:a")]
    assert row is not None and (row.status, row.ok) == ("done", False)
    assert row.result == "kill failed: RuntimeError: venue unreachable"


async def test_claimed_without_a_result_is_never_rerun_and_the_cli_says_so(db_url: str) -> None:
    await upgrade_to_head(db_url)
    control = RecordingControl()
    async with _sessions(db_url) as sessions:
        req = await cr.post_request(sessions, "disarm", "cli:a", "x", 60)
        assert await cr.claim(sessions, req.id, "host:1:dead")  # that service dies before acting
        assert await cr.handle_pending_requests(sessions, control, handled_by="svc") == []
        outcome = await cr.await_outcome(sessions, req.id, wait_s=0.2, by="cli:a", grace_s=0.3, poll_s=0.05)
        row = await cr.get_request(sessions, req.id)
    assert control.calls == []
    assert (outcome.ok, outcome.status) == (False, "claimed")
    assert "claimed by host:1:dead" in outcome.message and "will not run again" in outcome.message
    assert row is not None and (row.status, row.handled_by) == ("claimed", "host:1:dead")


async def test_a_claim_at_the_last_moment_is_waited_for(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await upgrade_to_head(db_url)
    real_expire = cr.expire_request
    async with _sessions(db_url) as sessions:
        req = await cr.post_request(sessions, "disarm", "cli:a", "x", 60)
        assert await cr.claim(sessions, req.id, "svc")

        async def expire_then_finish(*args: Any) -> bool:
            won = await real_expire(*args)
            # the service finishes after the CLI's withdrawal lost
            await cr.record_result(sessions, req.id, "svc", True, "disarmed: no new orders will be placed")
            return won

        monkeypatch.setattr(cr, "expire_request", expire_then_finish)
        outcome = await cr.await_outcome(sessions, req.id, wait_s=0.2, by="cli:a", grace_s=30, poll_s=0.05)
    assert (outcome.ok, outcome.status) == (True, "done")
    assert outcome.message == "disarmed: no new orders will be placed (handled by svc)"


async def test_an_interrupted_cli_withdraws_its_request(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await upgrade_to_head(db_url)
    async with _sessions(db_url) as sessions:
        req = await cr.post_request(sessions, "kill", "cli:a", "x", 60)
        polled = asyncio.Event()
        real_get = cr.get_request

        async def spy(*args: Any) -> ControlRequest | None:
            row = await real_get(*args)
            polled.set()
            return row

        monkeypatch.setattr(cr, "get_request", spy)
        task = asyncio.create_task(cr.await_outcome(sessions, req.id, wait_s=60, by="cli:a", poll_s=0.05))
        await asyncio.wait_for(polled.wait(), 30)  # the CLI is waiting on its pending request
        task.cancel()  # Ctrl-C
        with pytest.raises(asyncio.CancelledError):
            await task
        row = await real_get(sessions, req.id)
        assert row is not None and (row.status, row.handled_by) == ("expired", "cli:a")
        assert await cr.handle_pending_requests(sessions, RecordingControl(), handled_by="svc") == []


# ---- CLI input -------------------------------------------------------------------------------


def test_cli_request_without_a_running_service_expires(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    assert main(["migrate", "--db-url", url, "--apply"]) == 0
    capsys.readouterr()
    assert main(["kill", "--db-url", url, "--wait", "0.3"]) == 1
    err = capsys.readouterr().err
    assert "expired: no running service acknowledged it within 0.3s; nothing was done" in err
    assert "is run-service using this database?" in err


@pytest.mark.parametrize("wait", ["-1", "0", "nan", "inf", "1e3", "3601", "１５", ""])
def test_cli_refuses_a_bad_wait(tmp_path: Any, wait: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    assert main(["disarm", "--db-url", url, "--wait", wait]) == 2
    assert "--wait" in capsys.readouterr().err
    assert not (tmp_path / "never.db").exists()
