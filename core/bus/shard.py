"""Which feed worker owns which market: a stable hash of the market's shard key.

The key is the market's condition id, or for a member of a neg-risk event the event's id, so both
tokens of a market and every member of an event land on one worker (a Dutch book over the event
sees all its books from one publisher, in one epoch). The hash is CRC-32 of the key's UTF-8 bytes:
the same on every host and run (Python's ``hash()`` is salted per process).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from core.types import MarketInfo

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` (``"0/2"``, ``"1/2"``); raises ValueError with what is wrong."""
        m = _SHARD.fullmatch(text)
        if m is None:
            raise ValueError(f"shard {text!r}: expected I/N, e.g. 0/2")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def label(self) -> str:
        """A subject token / lease key part: ``0of2``."""
        return f"{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The shard (0 .. count-1) of a shard key."""
    return zlib.crc32(key.encode()) % count


def shard_key(market: MarketInfo) -> str:
    """What a market is sharded by: its neg-risk event when it has one, else its condition id."""
    if market.neg_risk and market.neg_risk_market_id:
        return market.neg_risk_market_id
    return market.condition_id
