"""A reader's continuity rules: apply a worker's messages only in sequence, resnapshot on any doubt.

Per followed asset the reader knows the worker epoch it follows, the next ``seq`` it expects and
whether it is in sync. In sync, a message with the expected ``seq`` is applied, an older one is a
duplicate; a later one is a **gap**: the book is marked ``awaiting_snapshot`` at once (nothing
trades on it), the message is buffered and the owning worker is asked for a snapshot. A snapshot
(answered, or one the stream carries) says the book as of its ``seq``: it is applied, the buffer's
later messages follow in order, and the reader is in sync again.

A message of a newer epoch (a standby took the shard over) starts the book over: it is reset, and
followed from ``seq`` 1 when that is the message (the new worker's first, a ``status`` saying it
waits for a snapshot), otherwise resnapshotted. A message of an older epoch (a worker that lost its
lease) is ignored. A reader that cannot be sure (the bus connection dropped, the epoch's worker fell
silent, its own book check failed) calls :meth:`BookSync.lost`: reset and resnapshot.

Pure logic: the NATS side (:mod:`core.bus.reader`) feeds it and carries out what it asks through
a :class:`SyncTarget`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.bus import messages as m
from core.bus import to_wire
from core.feed.counters import short_id
from core.types import BookStatus

log = logging.getLogger(__name__)

_SEEDABLE = frozenset({BookStatus.OK.value, BookStatus.STALE.value})
_LOST = frozenset({BookStatus.INCONSISTENT.value, BookStatus.AWAITING_SNAPSHOT.value})


class SyncTarget(Protocol):
    """Where the reader's decisions go (the service's ingest pipeline, and the bus requests)."""

    def frame(self, data: bytes) -> None:
        """Apply one venue-shaped frame (to the feed processor, through the pipeline)."""

    def reset(self, assets: Sequence[str], reason: str) -> None:
        """These books may be wrong: ``awaiting_snapshot`` until a snapshot seeds them."""

    def request(self, asset: str) -> None:
        """Ask the owning worker for a snapshot (the answer comes to :meth:`BookSync.on_reply`)."""


@dataclass
class _Track:
    epoch: int = -1
    next_seq: int = 0
    synced: bool = False
    asked_ns: int = 0  # when a snapshot was last asked for (0: not waiting for one)
    unanswered: int = 0  # requests in a row without an answer (the retry interval doubles, up to 16x)
    buffer: dict[int, m.MdMessage] = field(default_factory=dict)


@dataclass
class SyncStats:
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    old_epoch: int = 0
    epoch_changes: int = 0
    requests: int = 0
    replies_applied: int = 0
    replies_ignored: int = 0
    snapshots_in_stream: int = 0
    lost: int = 0
    buffer_dropped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class BookSync:
    def __init__(
        self,
        target: SyncTarget,
        *,
        retry_after_s: float = 2.0,
        max_buffer: int = 10_000,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._target = target
        self._retry_ns = int(retry_after_s * 1e9)
        self._max_buffer = max_buffer
        self._clock_ns = clock_ns
        self._tracks: dict[str, _Track] = {}
        self._resolved: set[str] = set()
        self.stats = SyncStats()

    # ---- what is followed --------------------------------------------------------------------
    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(self._tracks)

    def follow(self, assets: Iterable[str]) -> None:
        """Start following (the books are awaiting their snapshots; each is asked for)."""
        for asset in assets:
            if asset not in self._tracks:
                self._tracks[asset] = _Track()
                self._ask(asset, self._tracks[asset])

    def unfollow(self, assets: Iterable[str]) -> None:
        for asset in assets:
            self._tracks.pop(asset, None)

    def synced(self, asset: str) -> bool:
        track = self._tracks.get(asset)
        return track is not None and track.synced

    def epoch_of(self, asset: str) -> int:
        track = self._tracks.get(asset)
        return -1 if track is None else track.epoch

    def epochs(self) -> dict[int, list[str]]:
        """The epochs followed and their assets (in sync or not)."""
        out: dict[int, list[str]] = {}
        for asset, track in self._tracks.items():
            if track.epoch >= 0:
                out.setdefault(track.epoch, []).append(asset)
        return out

    # ---- input -------------------------------------------------------------------------------
    def on_message(self, msg: m.MdMessage) -> None:
        track = self._tracks.get(msg.asset)
        if track is None:
            return
        if msg.epoch < track.epoch:
            self.stats.old_epoch += 1
            return
        if msg.epoch > track.epoch:
            self._new_epoch(msg, track)
        if track.synced:
            if msg.seq < track.next_seq:
                self.stats.duplicates += 1
                return
            if msg.seq == track.next_seq:
                self._apply(msg)
                track.next_seq += 1
                return
            self.stats.gaps += 1
            self._lose(msg.asset, track, f"gap: seq {msg.seq}, expected {track.next_seq}")
        if isinstance(msg, m.Snapshot):  # the whole book as of its seq: no need to wait for an answer
            self.stats.snapshots_in_stream += 1
            self._resync(msg, track)
            return
        self._buffer(track, msg)
        if not track.asked_ns:
            self._ask(msg.asset, track)

    def on_reply(self, reply: m.SnapshotReply, asset: str) -> None:
        """The owning worker's answer to :meth:`SyncTarget.request` (may be late or redundant)."""
        track = self._tracks.get(asset)
        snap = reply.snapshot
        if track is None:
            return
        if snap is None or snap.asset != asset:
            self.stats.replies_ignored += 1
            return
        if snap.epoch < track.epoch or (track.synced and snap.epoch == track.epoch):
            self.stats.replies_ignored += 1  # older than what is followed, or no longer needed
            return
        self.stats.replies_applied += 1
        self._resync(snap, track)

    def lost(self, assets: Iterable[str], reason: str) -> None:
        """These books cannot be trusted any more (see the module docstring): reset, resnapshot."""
        tracks = [(a, t) for a in assets if (t := self._tracks.get(a)) is not None]
        if len(tracks) > 1:
            log.warning("%d books: %s; resnapshot", len(tracks), reason)
        for asset, track in tracks:
            self._lose(asset, track, reason, quiet=len(tracks) > 1)
            if not track.asked_ns:
                self._ask(asset, track)

    def check_published(self, epoch: int, seqs: Mapping[str, int]) -> list[str]:
        """A worker of ``epoch`` said it had published up to ``seqs`` (a heartbeat ago): an asset
        followed in sync in that epoch that has applied less lost its last message(s)."""
        behind = []
        for asset, seq in seqs.items():
            track = self._tracks.get(asset)
            if track is not None and track.synced and track.epoch == epoch and track.next_seq <= seq:
                behind.append(asset)
        if behind:
            self.stats.gaps += len(behind)
            self.lost(behind, f"gap: behind the worker's heartbeat (epoch {epoch})")
        return behind

    def due(self) -> list[str]:
        """Ask again for every snapshot not answered within ``retry_after_s``, doubled after each
        unanswered request up to 16 times (no worker may own the asset yet); call periodically."""
        now = self._clock_ns()
        out = []
        for asset, track in self._tracks.items():
            wait = self._retry_ns << min(track.unanswered, 4)
            if not track.synced and (not track.asked_ns or now - track.asked_ns >= wait):
                track.unanswered += 1
                self._ask(asset, track)
                out.append(asset)
        return out

    # ---- internals ---------------------------------------------------------------------------
    def _new_epoch(self, msg: m.MdMessage, track: _Track) -> None:
        if track.epoch >= 0:
            self.stats.epoch_changes += 1
            log.debug("%s: worker epoch %d -> %d", short_id(msg.asset), track.epoch, msg.epoch)
        track.epoch = msg.epoch
        track.buffer.clear()
        track.synced = False
        self._target.reset([msg.asset], "epoch")
        if msg.seq == 1:  # the new worker's first message: follow it from the start
            track.synced, track.next_seq, track.asked_ns, track.unanswered = True, 1, 0, 0

    def _lose(self, asset: str, track: _Track, reason: str, *, quiet: bool = False) -> None:
        self.stats.lost += 1
        key = reason.split(":", 1)[0]
        self.stats.by_reason[key] = self.stats.by_reason.get(key, 0) + 1
        if track.synced and not quiet:
            log.warning("%s: %s; resnapshot", short_id(asset), reason)
        track.synced = False
        self._target.reset([asset], key)

    def _ask(self, asset: str, track: _Track) -> None:
        track.asked_ns = self._clock_ns() or 1
        self.stats.requests += 1
        self._target.request(asset)

    def _buffer(self, track: _Track, msg: m.MdMessage) -> None:
        track.buffer[msg.seq] = msg
        while len(track.buffer) > self._max_buffer:
            del track.buffer[min(track.buffer)]
            self.stats.buffer_dropped += 1

    def _resync(self, snap: m.Snapshot, track: _Track) -> None:
        if snap.epoch > track.epoch:
            track.epoch = snap.epoch
            track.buffer.clear()
        self._apply(snap)
        track.synced, track.next_seq, track.asked_ns, track.unanswered = True, snap.seq + 1, 0, 0
        for seq in sorted(track.buffer):
            msg = track.buffer.pop(seq)
            if seq < track.next_seq or msg.epoch != track.epoch:
                continue
            if seq > track.next_seq:  # still a hole after the snapshot: ask again
                track.buffer[seq] = msg
                self._lose(snap.asset, track, f"gap: seq {seq}, expected {track.next_seq}")
                self._ask(snap.asset, track)
                return
            self._apply(msg)
            track.next_seq += 1

    def _apply(self, msg: m.MdMessage) -> None:
        self.stats.applied += 1
        target = self._target
        if isinstance(msg, m.Delta):
            target.frame(to_wire.delta_frame(msg))
        elif isinstance(msg, m.Snapshot):
            if msg.status in _SEEDABLE:
                target.frame(to_wire.book_frame(msg))
            else:  # the worker has no trustworthy book either: wait for its next snapshot
                target.reset([msg.asset], "worker_" + msg.status)
        elif isinstance(msg, m.Trade):
            target.frame(to_wire.trade_frame(msg))
        elif isinstance(msg, m.BestPrices):
            target.frame(to_wire.best_frame(msg))
        elif isinstance(msg, m.TickSize):
            target.frame(to_wire.tick_frame(msg))
        elif isinstance(msg, m.Status):
            if msg.new in _LOST:
                target.reset([msg.asset], "worker_" + msg.new)
        elif msg.condition not in self._resolved:  # Resolved: once per market, from whichever asset
            self._resolved.add(msg.condition)
            target.frame(to_wire.resolved_frame(msg))
