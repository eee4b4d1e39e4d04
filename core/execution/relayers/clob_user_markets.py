"""Which markets the user channel covers: those we hold an open order or a position in.

The channel only delivers events for the condition ids it is subscribed to, so a market joins
BEFORE an order of ours in it is posted and leaves only once nothing of ours can still produce an
event there. The set is the union of

- ``held``: what the engine says (markets with an open order or a position), handed in by the
  application whenever an order or fill changes it (:meth:`UserMarkets.follow`);
- ``posting``: markets with an order being posted right now (the engine may not have told us yet);
- ``settling``: markets with a trade of ours still on its way to CONFIRMED or FAILED: a sell
  that closes a position ends "held" while its settlement updates are still to come.

A market a post pinned stays in ``held`` until the next :meth:`UserMarkets.follow`, which the
engine's write-ahead (the order is open before it is posted) makes the authority again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class UserMarkets:
    def __init__(self, held: Iterable[str] = ()) -> None:
        self.held: dict[str, None] = dict.fromkeys(m for m in held if m)  # ordered: the subscription's order
        self.posting: Counter[str] = Counter()
        self.settling: dict[str, set[str]] = {}  # market -> trade ids not final yet

    def wanted(self) -> list[str]:
        out = dict(self.held)
        out.update((m, None) for m in self.posting)
        out.update((m, None) for m in self.settling)
        return list(out)

    def follow(self, held: Iterable[str]) -> None:
        self.held = dict.fromkeys(m for m in held if m)

    def pin(self, markets: Iterable[str]) -> None:
        for m in markets:
            if m:
                self.posting[m] += 1

    def unpin(self, markets: Iterable[str]) -> None:
        for m in markets:
            if not m:
                continue
            self.posting[m] -= 1
            if self.posting[m] <= 0:
                del self.posting[m]
            self.held[m] = None  # until the engine's next word on it (see the module docstring)

    def trade(self, market: str, trade_id: str, final: bool) -> bool:
        """A trade status of ours; True when a market stopped settling (the set may shrink)."""
        if not market:
            return False
        if not final:
            self.settling.setdefault(market, set()).add(trade_id)
            return False
        pending = self.settling.get(market)
        if pending is None:
            return False
        pending.discard(trade_id)
        if pending:
            return False
        del self.settling[market]
        return True
