"""The venue's balances kept fresh: the scheduled read covers collateral and every token held or
ordered; a confirmed fill triggers a read of what it moved, one read at a time (fills arriving
meanwhile are read together next), and nothing is read for an unconfirmed fill or while stopping."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from core.app.balances import VenueBalances
from core.app.lifecycle import Lifecycle
from core.events import FillEvent
from core.execution.funds import VenueFunds
from core.execution.positions import Position, PositionBook
from core.execution.store import OrderRecord
from core.execution.types import Fill
from core.types import Side


class Venue:
    def __init__(self) -> None:
        self.reads: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def collateral_balance_allowance(self) -> tuple[Decimal, Decimal | None]:
        await self.gate.wait()
        self.reads.append("collateral")
        return Decimal(100), Decimal(50)

    async def token_balance(self, token_id: str) -> Decimal:
        self.reads.append(token_id)
        return Decimal(3)


class Holdings:
    def __init__(self) -> None:
        self.positions = PositionBook()
        self.orders: list[OrderRecord] = []

    def open_orders(self) -> list[OrderRecord]:
        return self.orders


def fill(token: str, confirmed: bool = True) -> FillEvent:
    return FillEvent(Fill("c1", "v1", token, Side.BUY, Decimal("0.5"), Decimal(3), confirmed=confirmed))


async def test_the_scheduled_read_covers_collateral_and_every_token_held_or_ordered() -> None:
    venue, holdings = Venue(), Holdings()
    holdings.positions.positions["22"] = Position("22", shares=Decimal(4))
    holdings.positions.positions["33"] = Position("33", shares=Decimal(0))  # closed: not read
    holdings.orders = [OrderRecord("c1", "0xm", "11", Side.BUY, Decimal("0.4"), Decimal(5))]
    balances = VenueBalances(VenueFunds(venue), holdings, Lifecycle())
    await balances.refresh()
    assert venue.reads == ["collateral", "11", "22"]
    assert balances.funds.collateral == Decimal(100) and balances.funds.shares == {"11": Decimal(3), "22": Decimal(3)}


async def test_confirmed_fills_are_read_one_read_at_a_time() -> None:
    venue, life = Venue(), Lifecycle()
    balances = VenueBalances(VenueFunds(venue), Holdings(), life)
    venue.gate.clear()
    balances.on_fill(fill("11"))
    await asyncio.sleep(0)
    balances.on_fill(fill("22"))  # a read is under way: this one waits for the next
    balances.on_fill(fill("33"))
    balances.on_fill(fill("44", confirmed=False))  # matched, not final: no money moved yet
    venue.gate.set()
    await life.drain(30)
    assert venue.reads == ["collateral", "11", "collateral", "22", "33"]
    life.begin_stop()
    balances.on_fill(fill("55"))
    await life.drain(30)
    assert "55" not in venue.reads
