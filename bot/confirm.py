"""Server-side pending confirmations for live orders.

The inline button carries only a short random nonce (callback_data <= 64 bytes); the pending
action lives here. A confirmation is single-use (popped on the first valid tap), bound to the
user who asked for it, and expires after ``ttl_s``.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
"""What waits for the tap (the bot keeps an order ticket)."""


class TapResult(enum.StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # never existed, or already used (a second tap)
    EXPIRED = "expired"
    WRONG_USER = "wrong_user"


MAX_EXPIRED = 1000
"""Expired nonces remembered (to answer a late tap with "Expired."); the oldest half goes beyond it."""


@dataclass
class Pending(Generic[T]):
    nonce: str
    user_id: int
    chat_id: int
    payload: T
    created: float
    expires: float
    message_id: int | None = None
    meta: dict[str, object] = field(default_factory=dict)


class ConfirmationStore(Generic[T]):
    def __init__(self, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._pending: dict[str, Pending[T]] = {}
        self._expired: dict[str, Pending[T]] = {}

    @property
    def clock(self) -> Callable[[], float]:
        """The clock deadlines are measured on (another card store of the same bot shares it)."""
        return self._clock

    def create(self, user_id: int, chat_id: int, payload: T) -> Pending[T]:
        nonce = secrets.token_urlsafe(9)  # 12 chars: "c:" + nonce stays far below 64 bytes
        now = self._clock()
        pending = Pending(nonce, user_id, chat_id, payload, now, now + self.ttl_s)
        self._pending[nonce] = pending
        return pending

    def take(self, nonce: str, user_id: int) -> tuple[TapResult, Pending[T] | None]:
        """Validate a tap; on success the entry is consumed (single use)."""
        pending = self._pending.get(nonce)
        if pending is None:
            expired = self._expired.get(nonce)
            return (TapResult.EXPIRED, expired) if expired else (TapResult.UNKNOWN, None)
        if pending.user_id != user_id:
            return TapResult.WRONG_USER, pending
        if self._clock() >= pending.expires:
            self._expire(nonce)
            return TapResult.EXPIRED, pending
        del self._pending[nonce]
        return TapResult.OK, pending

    def cancel(self, nonce: str, user_id: int) -> tuple[TapResult, Pending[T] | None]:
        """Cancel button: same rules as a confirm tap."""
        return self.take(nonce, user_id)

    def expire_due(self) -> list[Pending[T]]:
        """Expire every entry past its deadline; returns them so their cards can be edited."""
        now = self._clock()
        due = [n for n, p in self._pending.items() if now >= p.expires]
        return [self._expire(n) for n in due]

    def _expire(self, nonce: str) -> Pending[T]:
        pending = self._pending.pop(nonce)
        self._expired[nonce] = pending
        if len(self._expired) > MAX_EXPIRED:  # bounded memory: forget the oldest expired nonces
            for old in list(self._expired)[: MAX_EXPIRED // 2]:
                del self._expired[old]
        return pending

    def __len__(self) -> int:
        return len(self._pending)
