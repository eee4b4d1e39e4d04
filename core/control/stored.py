"""The via-database transport: how a process outside the service reaches it.

A CLI process has no socket into the running service; both share its database. Reads (status,
health, markets) come from the tables the service writes; the safe-direction actions (disarm,
kill) are posted as control requests (:mod:`core.control.requests`) that a running service
claims, runs through its own facade, and answers. Arming is never offered here: it needs an
authorised operator in chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from core.control.health import EVENT_ALERT_KINDS, STANDING_SEVERITIES, HealthInputs, OpenAlert, StoredBook, StoredFeed
from core.control.types import ActionResult, ListedMarket, MarketListing, StoredStatus
from core.redact import redact_typed

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# The database modules (SQLAlchemy, the ORM models) are imported by the calls that use them, so a
# face that only builds a Control (`polybot --help`, the bot's start) does not pay for them.

HEALTH_ASSETS = 1000
"""Stored books health looks at (the most recently updated first)."""
DEFAULT_REQUEST_WAIT_S = 15.0


def database_url(text: str | None) -> str:
    """The database a face means: ``text``, or the default (``$POLYBOT_DB__URL`` or ./var/polybot.db).

    Raises :class:`core.errors.UsageError` (its message masks any password) for a URL we cannot use.
    """
    from core.store.db import default_db_url, parse_db_url

    url = (text or "").strip() or default_db_url()
    parse_db_url(url)
    return url


class DatabaseLink:
    """Reads the service's database and posts requests to it (one short-lived engine per call)."""

    def __init__(self, url: str | None = None, *, request_wait_s: float = DEFAULT_REQUEST_WAIT_S) -> None:
        self.url = database_url(url)
        self.request_wait_s = request_wait_s

    @asynccontextmanager
    async def _sessions(self, *, migrated: bool) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
        from core.store.db import create_engine, session_factory
        from core.store.migrate import ensure_schema

        engine = create_engine(self.url)
        try:
            if migrated:  # "has no schema: run polybot migrate --apply first", not a raw SQL error
                await ensure_schema(engine, self.url, migrate=False, migrate_flag=False)
            yield session_factory(engine)
        finally:
            await engine.dispose()

    async def status(self, *, max_assets: int = 50, verbose: bool = False) -> StoredStatus:
        from core.store.status import gather_status

        return await gather_status(self.url, max_assets=max_assets, verbose=verbose)

    async def health_inputs(self, staleness_ms: int) -> HealthInputs:
        from core.store.status import gather_status, open_alerts

        data = await gather_status(self.url, max_assets=HEALTH_ASSETS)
        schema = data["schema"]
        stored = StoredFeed(
            schema_empty=data["empty"],
            schema_at_head=schema["at_head"],
            books=[
                StoredBook(age_s=a["last_update_age_s"], crossed=a["crossed"], closed=a.get("closed", False))
                for a in data["assets"]
            ],
            staleness_ms=staleness_ms,
        )
        if data["empty"] or not schema["at_head"]:
            return HealthInputs(stored=stored)
        rows = await open_alerts(self.url, severities=STANDING_SEVERITIES, exclude_kinds=EVENT_ALERT_KINDS)
        alerts = [OpenAlert(r["kind"], r["key"], r["severity"], r["message"]) for r in rows]
        return HealthInputs(stored=stored, alerts=alerts)

    async def request(self, action: str, by: str, reason: str) -> ActionResult:
        """Post ``action`` for a running service, audit it, and wait for its answer.

        ``reason_code`` is "" when a service ran it (``ok`` says how it went), else the request's
        state: ``expired`` (no service took it; it can never run) or ``claimed`` (taken, no answer).
        """
        from core.control.audit import AuditWriter
        from core.control.requests import DONE, await_outcome, post_request

        front_end, _, user = by.partition(":")
        reason = redact_typed(reason)  # what a person typed is stored: never a secret pasted by mistake
        async with self._sessions(migrated=True) as sessions:
            request = await post_request(sessions, action, by, reason, self.request_wait_s)
            audit = AuditWriter(redact_typed, sessions=sessions, counted=False)
            await audit.record(front_end, user or None, action, reason, "requested", f"control request {request.id}")
            outcome = await await_outcome(sessions, request.id, wait_s=self.request_wait_s, by=by)
        if outcome.status == DONE:
            return ActionResult(outcome.ok, outcome.message)
        return ActionResult(False, f"request {request.id} {outcome.message}", outcome.status)

    async def markets(self, text: str | None, *, open_only: bool, limit: int | None) -> MarketListing:
        from core.markets import list_markets

        async with self._sessions(migrated=True) as sessions:
            rows = await list_markets(
                sessions,
                text,
                active=True if open_only else None,
                closed=False if open_only else None,
                limit=limit,
            )
            any_stored = bool(rows) or bool(await list_markets(sessions, limit=1))
        listed = [
            ListedMarket(info=r.info, end_date=r.end_date, event_id=r.event_id, fee_schedule=r.fee_schedule)
            for r in rows
        ]
        return MarketListing(markets=listed, any_stored=any_stored)
