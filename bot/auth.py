"""Deny-by-default authorisation and per-user command rate limiting for every update type."""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass


class Role(enum.IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        return cls[name.strip().upper()]


class Authoriser:
    """Numeric user ids only (never usernames); an empty table authorises nobody."""

    def __init__(self, users: Mapping[int, Role]) -> None:
        self._users = dict(users)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[int, str]]) -> Authoriser:
        return cls({int(uid): Role.parse(role) for uid, role in entries})

    def role_of(self, user_id: int | None) -> Role | None:
        if user_id is None:
            return None
        return self._users.get(int(user_id))

    def allows(self, user_id: int | None, needed: Role) -> bool:
        role = self.role_of(user_id)
        return role is not None and role >= needed

    @property
    def user_ids(self) -> list[int]:
        return sorted(self._users)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0
    """Refused only: whole seconds until the user's next command is accepted."""
    tell: bool = False
    """Refused only: the first refusal in this user's window, so the one that gets a reply."""


class UserRateLimiter:
    """At most ``per_minute`` commands per user in a sliding 60 s window.

    A refused command does not count. While a user is over the limit, only the first refusal in a
    window is to be answered (``tell``): one "slow down" per window, not one per message, so a flood
    cannot make the bot flood the chat back. The caller decides which commands are never limited.
    """

    WINDOW_S = 60.0

    def __init__(self, per_minute: int = 30, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._told: dict[int, float] = {}

    def check(self, user_id: int) -> RateDecision:
        """Count this command if it is allowed; otherwise say how long to wait and whether to tell."""
        if self.per_minute <= 0:
            return RateDecision(True)
        now = self._clock()
        hits = self._hits.setdefault(user_id, deque())
        while hits and now - hits[0] >= self.WINDOW_S:
            hits.popleft()
        if len(hits) < self.per_minute:
            hits.append(now)
            return RateDecision(True)
        retry_after = max(1, math.ceil(self.WINDOW_S - (now - hits[0])))
        told = self._told.get(user_id)
        tell = told is None or now - told >= self.WINDOW_S
        if tell:
            self._told[user_id] = now
        return RateDecision(False, retry_after, tell)
