"""Paper trading: a resting paper order fills when the live book trades through it.

After every batch of feed events, each touched asset with an open order of ours (and each asset
with a trade print) gets one fill check from the paper relayer; a check already pending for an
asset answers the new events too, so a busy feed does not queue one check per frame.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.app.lifecycle import Lifecycle
from core.app.ports import OpenOrders
from core.execution.types import BookFills
from core.feed.events import FeedEvent, TradePrint
from core.strategies.runner import touched_assets


class PaperFills:
    def __init__(self, relayer: BookFills, orders: OpenOrders, lifecycle: Lifecycle) -> None:
        self._relayer = relayer
        self._orders = orders
        self._lifecycle = lifecycle
        self._pending: set[str] = set()

    def on_events(self, events: Sequence[FeedEvent]) -> None:
        wanted = touched_assets(events) - self._pending
        if wanted:
            wanted &= {o.token_id for o in self._orders.open_orders()}
        wanted.update(ev.asset_id for ev in events if type(ev) is TradePrint and ev.asset_id not in self._pending)
        for asset in sorted(wanted):
            self._pending.add(asset)
            self._lifecycle.spawn(self._check(asset), f"paper-fill:{asset[:8]}")

    async def _check(self, token_id: str) -> None:
        try:
            await self._relayer.on_book_update(token_id)
        finally:
            self._pending.discard(token_id)
