"""Disarm / kill a running service from the CLI, through the database it writes to.

The CLI has no socket into the service; both share the database. ``polybot disarm`` / ``polybot kill``
insert a row in ``control_requests``; every service polls the table (its staleness job), claims a
pending request, acts through the same control facade the bot uses, and records the result the CLI
waits for. Only the safe direction exists here: arming needs an authorised operator in chat.

A request runs at most once, in one service, and never late:

- every status move is one conditional ``UPDATE ... WHERE id = :id AND status = 'pending'``; only
  the statement that changes the row (rowcount 1) wins, on SQLite (one writer at a time) and on
  PostgreSQL (a concurrent UPDATE of the same row re-checks the WHERE after the first commits);
- pending -> claimed (a service, only while ``expires`` is in the future) -> done (result recorded);
  pending -> expired (the CLI gave up waiting, or a service found it past ``expires``);
- the action runs after the claim has committed. A service that dies between claim and result
  leaves the row ``claimed`` for good: nothing claims a non-pending row, so it is never re-run, and
  the CLI reports "claimed by X but no result recorded" instead of guessing.

Times (``created``, ``expires``, ``handled_at`` and the "now" a claim is checked against) are the
database's clock (:func:`db_now`): the CLI and the service may run on different hosts against one
PostgreSQL server, and a skewed CLI clock must not make a request born expired or live too long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import CursorResult, Result, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.control import settlement
from core.control.types import ActionResult
from core.redact import redact
from core.store.columns import utcnow
from core.store.models import CONTROL_ACTIONS, CONTROL_STATUSES, ControlRequest
from core.store.repo import dialect_name

log = logging.getLogger(__name__)

ACTIONS = CONTROL_ACTIONS
PENDING, CLAIMED, DONE, EXPIRED = CONTROL_STATUSES
RESULT_GRACE_S = 30.0
"""How long the CLI still waits for the result of a request a service claimed at its last moment
(a kill cancels every open order at the venue, which can take a while)."""
POLL_S = 0.25
EXPIRED_BY_SERVICE = "expired: no service claimed it before it expired; nothing was done"


class ControlActions(Protocol):
    """The part of :class:`core.control.Control` a request needs."""

    async def kill(self, by: str) -> ActionResult: ...

    async def disarm(self, by: str, reason: str = "") -> ActionResult: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the CLI reports: ``status`` is done, expired, or claimed (claimed, no result yet)."""

    ok: bool
    status: str
    message: str


async def db_now(session: AsyncSession) -> datetime:
    """The database's current time (aware UTC).

    PostgreSQL: the server's ``clock_timestamp()`` (the real time, not the transaction's start).
    SQLite has no server and its file is local, so every process using it shares this host's clock.
    """
    if dialect_name(session) == "sqlite":
        return utcnow()
    value = (await session.execute(text("SELECT clock_timestamp()"))).scalar_one()
    if not isinstance(value, datetime):  # pragma: no cover - asyncpg returns an aware datetime
        raise TypeError(f"clock_timestamp() returned {value!r}")
    return value


async def post_request(
    sessions: async_sessionmaker[AsyncSession], action: str, by: str, reason: str, wait_s: float
) -> ControlRequest:
    """Store a pending request that expires ``wait_s`` seconds from now (database clock)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown control action {action!r}")
    if not wait_s >= 0:
        raise ValueError(f"wait must be >= 0 seconds, not {wait_s!r}")
    async with sessions() as s, s.begin():
        now = await db_now(s)
        row = ControlRequest(
            action=action,
            requested_by=by[:100],
            reason=reason,
            created=now,
            expires=now + timedelta(seconds=wait_s),
            status=PENDING,
        )
        s.add(row)
    return row


async def get_request(sessions: async_sessionmaker[AsyncSession], request_id: int) -> ControlRequest | None:
    async with sessions() as s:
        return await s.get(ControlRequest, request_id)


async def _move(
    sessions: async_sessionmaker[AsyncSession],
    request_id: int,
    new_status: str,
    handled_by: str,
    *,
    unexpired_only: bool,
    ok: bool | None = None,
    result: str | None = None,
) -> bool:
    """pending -> ``new_status`` in one conditional UPDATE; True when this caller won the row.

    The UPDATE is the transaction's first statement on SQLite (``db_now`` reads no table there),
    so the write lock is taken with the busy timeout instead of upgrading a stale read snapshot.
    """
    async with sessions() as s, s.begin():
        now = await db_now(s)
        where = [ControlRequest.id == request_id, ControlRequest.status == PENDING]
        if unexpired_only:
            where.append(ControlRequest.expires > now)
        values = {"status": new_status, "handled_by": handled_by[:100], "handled_at": now}
        if ok is not None:
            values.update(ok=ok, result=result)
        res = await s.execute(
            update(ControlRequest).where(*where).values(**values).execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE changed (an UPDATE's result is always a cursor result)."""
    if not isinstance(result, CursorResult):  # pragma: no cover - SQLAlchemy returns one for DML
        raise TypeError(f"an UPDATE returned {type(result).__name__}, not a cursor result")
    return int(result.rowcount or 0)


async def claim(sessions: async_sessionmaker[AsyncSession], request_id: int, handled_by: str) -> bool:
    """Claim a pending, unexpired request for ``handled_by``; exactly one claimant can win."""
    return await _move(sessions, request_id, CLAIMED, handled_by, unexpired_only=True)


async def expire_request(sessions: async_sessionmaker[AsyncSession], request_id: int, by: str, waited_s: float) -> bool:
    """Withdraw a request nobody claimed (the CLI's wait ended); True when it can now never run."""
    message = f"expired: no running service acknowledged it within {waited_s:g}s; nothing was done"
    return await _move(sessions, request_id, EXPIRED, by, unexpired_only=False, ok=False, result=message)


async def record_result(
    sessions: async_sessionmaker[AsyncSession], request_id: int, handled_by: str, ok: bool, message: str
) -> None:
    async with sessions() as s, s.begin():
        now = await db_now(s)
        await s.execute(
            update(ControlRequest)
            .where(
                ControlRequest.id == request_id,
                ControlRequest.status == CLAIMED,
                ControlRequest.handled_by == handled_by[:100],
            )
            .values(status=DONE, ok=ok, result=message, handled_at=now)
            .execution_options(synchronize_session=False)
        )


async def expire_overdue(sessions: async_sessionmaker[AsyncSession], handled_by: str) -> int:
    """Mark every pending request past its ``expires`` expired (a CLI that died while waiting)."""
    async with sessions() as s, s.begin():
        now = await db_now(s)
        res = await s.execute(
            update(ControlRequest)
            .where(ControlRequest.status == PENDING, ControlRequest.expires <= now)
            .values(status=EXPIRED, handled_by=handled_by[:100], handled_at=now, ok=False, result=EXPIRED_BY_SERVICE)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res)


async def _run(control: ControlActions, req: ControlRequest) -> ActionResult:
    if req.action in settlement.REQUEST_ACTIONS and isinstance(control, settlement.SettlementActions):
        ok, answer = await settlement.run_request(control, req.action, req.requested_by, req.reason)
        return ActionResult(ok, answer)
    if req.action == "kill":
        return await control.kill(req.requested_by)
    return await control.disarm(req.requested_by, req.reason)


async def handle_pending_requests(
    sessions: async_sessionmaker[AsyncSession], control: ControlActions, *, handled_by: str
) -> list[int]:
    """Expire overdue requests, then claim and run the pending ones, oldest first.

    Returns the ids this call ran. Called by the service's staleness job; any number of services
    may call it at once on one database: each request runs in exactly one of them.
    """
    # a read first: the common case (nothing pending) takes no write lock every tick
    async with sessions() as s:
        now = await db_now(s)
        pending = (
            (
                await s.execute(
                    select(ControlRequest)
                    .where(ControlRequest.status == PENDING)
                    .order_by(ControlRequest.created, ControlRequest.id)
                )
            )
            .scalars()
            .all()
        )
    if any(req.expires <= now for req in pending):
        expired = await expire_overdue(sessions, handled_by)
        if expired:
            log.warning("%d CLI control request(s) expired before any service claimed them; not run", expired)
    ran: list[int] = []
    for req in pending:
        if req.expires <= now or not await claim(sessions, req.id, handled_by):
            continue  # another service won it, or the CLI withdrew it
        ran.append(req.id)
        log.warning("control request %d: %s by %s (%r)", req.id, req.action, req.requested_by, redact(req.reason))
        try:
            result = await _run(control, req)
            ok, message = result.ok, result.message
        except Exception as exc:  # recorded as a failure, never re-run
            log.exception("control request %d (%s) failed", req.id, req.action)
            ok, message = False, f"{req.action} failed: {type(exc).__name__}: {redact(str(exc))}"
        await record_result(sessions, req.id, handled_by, ok, message)
    return ran


def _outcome(req: ControlRequest) -> Outcome:
    if req.status == DONE:
        return Outcome(bool(req.ok), DONE, f"{req.result or 'done'} (handled by {req.handled_by})")
    return Outcome(False, EXPIRED, req.result or EXPIRED_BY_SERVICE)


async def await_outcome(
    sessions: async_sessionmaker[AsyncSession],
    request_id: int,
    *,
    wait_s: float,
    by: str,
    grace_s: float = RESULT_GRACE_S,
    poll_s: float = POLL_S,
) -> Outcome:
    """Wait up to ``wait_s`` for a service's result, then withdraw the request if still pending.

    If the withdrawal loses, a service claimed the request at the last moment: wait up to
    ``grace_s`` more for its result. Cancelled (Ctrl-C) while pending: the request is withdrawn.
    """
    try:
        req = await _settled_within(sessions, request_id, wait_s, poll_s)
    except asyncio.CancelledError:
        await expire_request(sessions, request_id, by, wait_s)
        raise
    if req is not None:
        return _outcome(req)
    if await expire_request(sessions, request_id, by, wait_s):
        req = await get_request(sessions, request_id)
        return Outcome(False, EXPIRED, req.result if req and req.result else EXPIRED_BY_SERVICE)
    req = await _settled_within(sessions, request_id, grace_s, poll_s)
    if req is not None:
        return _outcome(req)
    claimed = await get_request(sessions, request_id)
    return Outcome(
        False,
        CLAIMED,
        f"claimed by {claimed.handled_by if claimed else '?'} but no result recorded within {grace_s:g}s more; it "
        "will not run again: check that service's log and /status",
    )


async def _settled_within(
    sessions: async_sessionmaker[AsyncSession], request_id: int, seconds: float, poll_s: float
) -> ControlRequest | None:
    """The request once it is done or expired, polling for at most ``seconds``; None if it is not by then."""
    deadline = time.monotonic() + seconds
    while True:
        req = await get_request(sessions, request_id)
        if req is None:
            raise LookupError(f"control request {request_id} vanished from the database")
        if req.status in (DONE, EXPIRED):
            return req
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        await asyncio.sleep(min(poll_s, left))  # the last look is at the deadline, not a poll after it
