"""The venue's balances, kept fresh: collateral and the shares of every token we hold or have an
order on, on a schedule and after every confirmed fill (money and shares moved at the venue).

Only when funds come from the venue (live, or dry-run with API credentials); paper funds are
computed locally. Reads after fills are coalesced: one read at a time, covering every token
filled meanwhile.
"""

from __future__ import annotations

from typing import Protocol

from core.app.lifecycle import Lifecycle
from core.app.ports import OpenOrders
from core.events import FillEvent
from core.execution.funds import VenueFunds
from core.execution.positions import PositionBook


class Holdings(OpenOrders, Protocol):
    """What we hold and what we have resting (the engine)."""

    @property
    def positions(self) -> PositionBook: ...


class VenueBalances:
    def __init__(self, funds: VenueFunds, holdings: Holdings, lifecycle: Lifecycle) -> None:
        self.funds = funds
        self._holdings = holdings
        self._lifecycle = lifecycle
        self._filled: set[str] = set()
        self._reading = False

    async def refresh(self) -> None:
        """Re-read collateral and the shares of every token we hold or have orders on."""
        tokens = {p.token_id for p in self._holdings.positions.open_positions()}
        tokens |= {o.token_id for o in self._holdings.open_orders()}
        await self.funds.refresh(sorted(tokens))

    def on_fill(self, ev: FillEvent) -> None:
        if not ev.fill.confirmed or self._lifecycle.stopping:
            return
        self._filled.add(ev.fill.token_id)
        if not self._reading:
            self._reading = True
            self._lifecycle.spawn(self._read_filled(), "balances")

    async def _read_filled(self) -> None:
        try:
            while self._filled:
                tokens, self._filled = sorted(self._filled), set()
                await self.funds.refresh(tokens)
        finally:
            self._reading = False
