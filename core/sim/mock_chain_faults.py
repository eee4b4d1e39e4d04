"""Faults the chain double injects, for the transaction manager's tests.

Transaction faults are taken by the next accepted ``eth_sendRawTransaction`` (a refused one takes
none): ``drop`` (a hash is returned, the transaction goes nowhere: receipt and lookup stay null),
``revert`` (mined with status 0, nothing applied), ``stick`` (held in the pool until
:meth:`MockChain.release` or a replacement with higher fees). Request faults are taken by the
next HTTP requests, whatever they ask: ``rate_limit`` (HTTP 429 with Retry-After) and
``timeout`` (the request is held past any client timeout, then the connection closes unanswered).
``counts`` says how many of each were served.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

DROP = "drop"
REVERT = "revert"
STICK = "stick"
RATE_LIMIT = "rate_limit"
TIMEOUT = "timeout"
TX_FAULTS = (DROP, REVERT, STICK)


@dataclass(slots=True)
class ChainFaults:
    tx_queue: list[str] = field(default_factory=list)  # the next accepted transactions' fates, in order
    rate_limited: int = 0
    retry_after_s: float = 1.0
    timeouts: int = 0
    hold_s: float = 60.0
    counts: Counter[str] = field(default_factory=Counter)  # fault kind -> times served

    def drop_next(self, n: int = 1) -> None:
        self.tx_queue.extend([DROP] * n)

    def revert_next(self, n: int = 1) -> None:
        self.tx_queue.extend([REVERT] * n)

    def stick_next(self, n: int = 1) -> None:
        self.tx_queue.extend([STICK] * n)

    def rate_limit_next(self, n: int = 1, retry_after_s: float = 1.0) -> None:
        self.rate_limited += n
        self.retry_after_s = retry_after_s

    def timeout_next(self, n: int = 1, hold_s: float = 60.0) -> None:
        self.timeouts += n
        self.hold_s = hold_s

    def clear(self) -> None:
        self.tx_queue.clear()
        self.rate_limited = self.timeouts = 0

    # ------------------------------------------------------------------ taken by the double

    def take_tx(self) -> str | None:
        if not self.tx_queue:
            return None
        kind = self.tx_queue.pop(0)
        self.counts[kind] += 1
        return kind

    def take_request(self) -> str | None:
        if self.rate_limited > 0:
            self.rate_limited -= 1
            self.counts[RATE_LIMIT] += 1
            return RATE_LIMIT
        if self.timeouts > 0:
            self.timeouts -= 1
            self.counts[TIMEOUT] += 1
            return TIMEOUT
        return None

    @property
    def dropped(self) -> int:
        return self.counts[DROP]

    @property
    def reverted(self) -> int:
        return self.counts[REVERT]

    @property
    def stuck(self) -> int:
        return self.counts[STICK]

    @property
    def rate_limits(self) -> int:
        return self.counts[RATE_LIMIT]

    @property
    def timeouts_served(self) -> int:
        return self.counts[TIMEOUT]
