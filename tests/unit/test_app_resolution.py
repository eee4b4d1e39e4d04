"""MarketResolutions without sockets: a followed market the database already has closed is not
traded after a start (no alert: it was said when it closed), its books close as they appear; the
alert text when nothing is held; a resolution of a market we do not know still alerts once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.app.resolution import MarketResolutions, Resolution
from core.events import Alert, EventBus, Recorder
from core.execution.positions import PositionBook
from core.execution.records import OrderRecord
from core.execution.types import CancelResult
from core.feed.events import BookStatusChanged
from core.registry import MarketRegistry
from core.types import BookStatus, MarketInfo, TokenInfo

OPEN = MarketInfo("0xopen", "Open?", "open", (TokenInfo("o-y", "Yes"), TokenInfo("o-n", "No")))
SHUT = MarketInfo("0xshut", "Shut?", "shut", (TokenInfo("s-y", "Yes"), TokenInfo("s-n", "No")), closed=True)


class Book:
    def __init__(self) -> None:
        self.status = BookStatus.OK

    def set_status(self, status: BookStatus) -> None:
        self.status = status


class Engine:
    def __init__(self) -> None:
        self.positions = PositionBook()
        self.canceled: list[str] = []

    def open_orders(self) -> list[OrderRecord]:
        return []

    async def cancel(self, client_order_id: str) -> CancelResult:
        self.canceled.append(client_order_id)
        return CancelResult(canceled=(client_order_id,))


class Stopper:
    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop_market(self, condition_id: str) -> int:
        self.stopped.append(condition_id)
        return 1


def _resolutions(bus: EventBus, books: dict[str, Book], stopper: Stopper, tasks: list[Any]) -> MarketResolutions:
    res = MarketResolutions(
        registry=MarketRegistry([OPEN, SHUT]),
        engine=Engine(),
        books=books,
        sessions=async_sessionmaker[AsyncSession](),
        strategies=stopper,
        bus=bus,
        spawn=lambda work, name: tasks.append(work),
        watched=[OPEN.condition_id, SHUT.condition_id],
    )
    res._mark_closed = _no_db  # type: ignore[method-assign]  # the integration tests check the row
    return res


async def _no_db(condition_id: str) -> None:
    return None


def test_a_market_closed_before_the_start_is_not_traded_and_not_alerted() -> None:
    bus, books, stopper, tasks = EventBus(), {"s-y": Book()}, Stopper(), list[Any]()
    rec = Recorder(bus, Alert)
    res = _resolutions(bus, books, stopper, tasks)
    assert res.already_closed([OPEN, SHUT]) == 1
    assert stopper.stopped == ["0xshut"] and books["s-y"].status is BookStatus.CLOSED
    assert res.watched() == ["0xopen"]
    # its other book appears later and a snapshot makes it ok: it is closed again
    books["s-n"] = Book()
    res.on_events([BookStatusChanged("s-n", BookStatus.AWAITING_SNAPSHOT, BookStatus.OK, "snapshot", 1)])
    assert books["s-n"].status is BookStatus.CLOSED
    assert not res.resolve(Resolution("0xshut", "s-y", "Yes", "feed"))
    assert not tasks and not rec.events


def test_the_alert_says_what_won_and_that_nothing_is_held() -> None:
    bus, stopper, tasks = EventBus(), Stopper(), list[Any]()
    rec = Recorder(bus, Alert)
    res = _resolutions(bus, {}, stopper, tasks)
    assert res.resolve(Resolution("0xopen", "", "Yes", "gamma"))
    assert not res.resolve(Resolution("0xopen", "o-y", "Yes", "feed"))
    [work] = tasks
    asyncio.run(work)  # the spawned settlement: cancels, database, alert
    [alert] = rec.of(Alert)
    assert alert.message == "resolved: Open? → Yes; you hold 0 winning shares (redeemable 0 pUSD)"
    assert alert.key == "0xopen" and stopper.stopped == ["0xopen"]
    assert res.message(Resolution("0xgone", "", "", "feed"), None) == (
        "resolved: 0xgone → unknown outcome; you hold 0 winning shares (redeemable 0 pUSD)"
    )
