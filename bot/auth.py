"""Deny-by-default authorisation and per-user command rate limiting for every update type."""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping


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


class UserRateLimiter:
    """At most ``per_minute`` commands per user in a sliding 60 s window."""

    def __init__(self, per_minute: int = 30, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._hits: dict[int, deque[float]] = {}

    def allow(self, user_id: int) -> bool:
        if self.per_minute <= 0:
            return True
        now = self._clock()
        hits = self._hits.setdefault(user_id, deque())
        while hits and now - hits[0] >= 60.0:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return False
        hits.append(now)
        return True
