"""What the application layer needs of the components, as narrow written contracts.

The engine, the risk gate and the relayers satisfy these structurally; the policies depend on
these instead of on the concrete classes, so each is tested with small doubles.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from core.execution.store import OrderRecord
from core.types import MarketInfo


class ArmedState(Protocol):
    """The risk gate's arm switch."""

    @property
    def armed(self) -> bool: ...


class MarketRules(Protocol):
    """Whoever checks orders against a market's rules (the engine)."""

    def register_markets(self, markets: Iterable[MarketInfo]) -> None: ...


class OpenOrders(Protocol):
    """Our orders still resting (the engine)."""

    def open_orders(self) -> list[OrderRecord]: ...
