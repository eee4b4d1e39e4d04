"""The scheduled jobs: the staleness tick says what the feed has to say before its database and
venue round trips; reconciling asks the venue only when there is something to settle, and neither
a failing database nor a failing venue breaks the tick."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import pytest

from core.app.alerts import QuietBooks
from core.app.control_requests import ControlRequests
from core.app.jobs import Jobs
from core.app.market_refresh import MarketRefresh
from core.app.order_sinks import TradingCounters
from core.app.reports import Reports
from core.app.venue_watch import VenueWatch
from core.events import Alert, EventBus, Recorder
from core.execution.engine import ReconcileReport
from core.execution.store import OrderRecord
from core.execution.types import OrderStatus
from core.execution.venue_link import VenueStatus
from core.registry import MarketRegistry
from core.settings import GammaSettings
from core.types import BookStatus, Side

S = 1_000_000_000


@dataclass
class Book:
    last_update_ns: int
    raw_status: BookStatus = BookStatus.OK


class Engine:
    def __init__(self, log: list[str], statuses: list[OrderStatus]) -> None:
        self.log = log
        self.statuses = statuses
        self.fail = False

    def open_orders(self) -> list[OrderRecord]:
        return [
            OrderRecord(f"c{i}", "0xm", "t", Side.BUY, Decimal("0.5"), Decimal(5), status=s)
            for i, s in enumerate(self.statuses)
        ]

    async def reconcile(self) -> ReconcileReport:
        self.log.append("reconcile")
        if self.fail:
            raise TimeoutError("venue timed out")
        return ReconcileReport(checked=len(self.statuses), changed={"c0": "submitted_unknown -> live"})


class Pipeline:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def tick(self, now_ns: int | None = None) -> object:
        self.log.append("tick")
        return []


class Rig:
    def __init__(self, statuses: list[OrderStatus], venue: VenueStatus | None = None) -> None:
        self.log: list[str] = []
        self.bus = EventBus()
        self.rec = Recorder(self.bus, Alert)
        self.engine = Engine(self.log, statuses)
        self.requests_fail = False

        async def handle_requests() -> object:
            self.log.append("control requests")
            if self.requests_fail:
                raise ConnectionError("database is locked")
            return []

        def venue_status() -> VenueStatus | None:
            self.log.append(f"venue {len(self.rec.events)} alert(s) so far")
            return venue

        self.jobs = Jobs(
            feed=Pipeline(self.log),
            books={"t": Book(1 * S)},
            quiet=QuietBooks(self.bus, str, quiet_after_s=5),
            venue_watch=VenueWatch(self.bus, after_failures=3, heartbeat_s=5),
            venue_status=venue_status,
            engine=self.engine,
            control_requests=ControlRequests(handle_requests),
            market_refresh=MarketRefresh(GammaSettings(), None, MarketRegistry(), self.engine, self.bus),  # type: ignore[arg-type]
            reports=Reports(None, TradingCounters(), self.bus, None),  # type: ignore[arg-type]
            balances=None,
            clock_ns=lambda: 10 * S,
        )


async def test_the_staleness_tick_says_what_the_feed_has_to_say_before_its_round_trips() -> None:
    down = VenueStatus(3, 100.0, "ReadTimeout", "connected", None, None)
    rig = Rig([OrderStatus.LIVE, OrderStatus.SUBMITTED_UNKNOWN], venue=down)
    await rig.jobs.staleness()
    # the quiet book was said before the venue check, the venue before the database and the venue's truth
    assert rig.log == ["tick", "venue 1 alert(s) so far", "control requests", "reconcile"]
    assert [a.kind for a in rig.rec.of(Alert)] == ["market_quiet", "venue_unreachable"]


async def test_the_tick_reconciles_only_unknown_outcomes_and_the_scheduled_pass_any_open_order() -> None:
    rig = Rig([OrderStatus.LIVE])
    await rig.jobs.staleness()
    assert "reconcile" not in rig.log  # nothing unknown: no venue round trip
    await rig.jobs.reconcile()
    assert rig.log.count("reconcile") == 1
    rig.engine.statuses = []
    await rig.jobs.reconcile()
    assert rig.log.count("reconcile") == 1  # no open order: nothing to ask


async def test_a_failing_database_or_venue_is_logged_and_the_tick_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig([OrderStatus.SUBMITTED_UNKNOWN])
    rig.requests_fail = True
    rig.engine.fail = True
    with caplog.at_level(logging.ERROR):
        await rig.jobs.staleness()
        await rig.jobs.staleness()
    assert rig.log.count("reconcile") == 2 and rig.log.count("control requests") == 2
    assert caplog.text.count("could not handle a control request from the database") == 2
    assert caplog.text.count("reconciling open orders with the venue failed; will retry") == 2


async def test_balances_without_venue_funds_is_a_no_op() -> None:
    rig = Rig([])
    await rig.jobs.balances()
    assert rig.log == []
