"""Which of the workers claiming a shard is active: a lease in a JetStream key-value bucket.

One key per shard. Taking it is revision-checked, so exactly one claimant wins:

- **create-if-absent** (``KeyValue.create``): the key is new, deleted (a clean stop) or expired;
- **take over** (``KeyValue.update`` with the revision last seen): a standby that has watched the
  same revision for ``ttl_s`` by its own clock (the holder stopped renewing) replaces it; if two
  standbys try, the second finds a newer revision and loses.

The holder renews every ``ttl_s / 3`` with ``update(last=its revision)``. A renewal refused for a
wrong revision means the lease was taken: the holder stops at once. A holder that cannot renew
(bus unreachable) stops on its own after ``0.8 * ttl_s`` from the start of its last successful
renewal, before any standby may take over, so two workers never publish for a shard at once by
their clocks; the readers' epoch check (the revision of the taking is the worker epoch) stops
what a paused one might still send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from core.bus import messages as m

log = logging.getLogger(__name__)

HOLD_FRACTION = 0.8


class ShardLease:
    def __init__(
        self,
        kv: KeyValue,
        key: str,
        *,
        worker: str,
        shard: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._kv = kv
        self.key = key
        self.worker = worker
        self.shard = shard
        self.ttl_s = ttl_s
        self._clock = clock
        self._clock_ns = clock_ns
        self.revision: int | None = None  # the held revision (None: not held)
        self.epoch = 0  # the revision at which it was taken
        self._held_since = 0.0  # start of the last successful take or renewal (monotonic)
        self._seen: tuple[int, float] | None = None  # (revision, first seen) of another's lease

    @property
    def held(self) -> bool:
        return self.revision is not None and self._clock() - self._held_since < HOLD_FRACTION * self.ttl_s

    def holder_value(self) -> bytes:
        return m.encode(m.Lease(self.worker, self.shard, self._clock_ns()))

    async def try_take(self) -> bool:
        """Take the lease if free or abandoned (see the module docstring); True when held now."""
        started = self._clock()
        try:
            revision = await self._kv.create(self.key, self.holder_value())
        except KeyWrongLastSequenceError:
            return await self._try_take_over(started)
        return self._taken(revision, started, "free")

    async def _try_take_over(self, started: float) -> bool:
        try:
            entry = await self._kv.get(self.key)
        except KeyNotFoundError:
            return False  # gone between the two calls: the next try creates it
        revision = entry.revision or 0
        if self._seen is None or self._seen[0] != revision:
            self._seen = (revision, started)  # someone renewed: watch this revision from now
            return False
        if started - self._seen[1] < self.ttl_s:
            return False
        try:
            new = await self._kv.update(self.key, self.holder_value(), last=revision)
        except KeyWrongLastSequenceError:
            return False  # renewed at the last moment, or another standby was faster
        holder = _holder(entry.value)
        return self._taken(new, started, f"taken over from {holder} (silent {started - self._seen[1]:.1f}s)")

    def _taken(self, revision: int, started: float, how: str) -> bool:
        self.revision = self.epoch = revision
        self._held_since = started
        self._seen = None
        log.warning("shard %s: lease %s held by %s, epoch %d (%s)", self.shard, self.key, self.worker, revision, how)
        return True

    async def renew(self) -> bool:
        """Renew a held lease; False when it is lost (taken, or not renewable for too long)."""
        if self.revision is None:
            return False
        started = self._clock()
        try:
            update = self._kv.update(self.key, self.holder_value(), last=self.revision)
            self.revision = await asyncio.wait_for(update, timeout=0.3 * self.ttl_s)
        except KeyWrongLastSequenceError:
            log.error("shard %s: lease %s was taken by another worker: standing down", self.shard, self.key)
            self.revision = None
            return False
        except Exception as exc:  # the bus is unreachable: hold on while it is safe
            if not self.held:
                log.error("shard %s: lease %s not renewed in time (%s): standing down", self.shard, self.key, exc)
                self.revision = None
                return False
            log.warning("shard %s: lease renewal failed (%s); retrying", self.shard, exc)
            return True
        self._held_since = started
        return True

    async def release(self) -> None:
        """A clean stop: delete the key so a standby takes over at once."""
        revision, self.revision = self.revision, None
        if revision is None:
            return
        try:
            await self._kv.delete(self.key, last=revision)
            log.info("shard %s: lease %s released", self.shard, self.key)
        except Exception as exc:
            log.warning("shard %s: lease not released (%s); it expires", self.shard, exc)


def _holder(value: bytes | None) -> str:
    if not value:
        return "?"
    try:
        return m.decode_as(value, m.Lease).worker
    except Exception:
        return "?"
