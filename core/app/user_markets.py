"""The user channel follows the markets we hold an open order or a position in.

Recomputed from the engine (:func:`core.app.watch.held_markets`) at start and on every order or
fill event, and handed to the relayer, which sends the difference on its live socket
(:mod:`core.execution.relayers.clob_user_markets` adds the markets being posted to, before the
post, and those with a trade still settling).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

from core.app.watch import Holdings, held_markets
from core.events import EventBus, FillEvent, OrderEvent


class UserMarketTarget(Protocol):
    def follow_markets(self, markets: Iterable[str]) -> None: ...


class UserMarketSync:
    def __init__(self, bus: EventBus, holdings: Holdings, target: UserMarketTarget) -> None:
        self._holdings = holdings
        self._target = target
        self.refreshes = 0
        self._pending = False
        self._unsubscribe: list[Callable[[], None]] = [
            bus.subscribe(OrderEvent, self._on_event),
            bus.subscribe(FillEvent, self._on_event),
        ]

    def refresh(self) -> list[str]:
        self._pending = False
        markets = sorted(held_markets(self._holdings))
        self._target.follow_markets(markets)
        self.refreshes += 1
        return markets

    def _on_event(self, _event: object) -> None:
        # one recompute per burst of events (a batch's legs, a cancel-all), on the loop's next turn:
        # additions that cannot wait are made by the relayer itself before it posts
        if self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.refresh()
            return
        self._pending = True
        loop.call_soon(self.refresh)

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
