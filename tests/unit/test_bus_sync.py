"""BookSync's continuity rules, message by message (what the reader applies, resets and asks)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from core.bus import messages as m
from core.bus.reader import BusFeed
from core.bus.sync import BookSync
from core.settings import BusSettings

A, B = "111", "222"


class Target:
    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def frame(self, data: bytes) -> None:
        self.log.append(("frame", data.decode()))

    def reset(self, assets: Sequence[str], reason: str) -> None:
        self.log.extend(("reset", f"{a}:{reason}") for a in assets)

    def request(self, asset: str) -> None:
        self.log.append(("request", asset))

    def take(self) -> list[tuple[str, str]]:
        out, self.log = self.log, []
        return out


def delta(seq: int, epoch: int = 5, asset: str = A) -> m.Delta:
    return m.Delta(condition="0xc", asset=asset, epoch=epoch, seq=seq, levels=(m.DeltaLevel("BUY", "0.5", str(seq)),))


def snap(seq: int, epoch: int = 5, status: str = "ok", asset: str = A) -> m.Snapshot:
    return m.Snapshot(
        condition="0xc",
        asset=asset,
        epoch=epoch,
        seq=seq,
        bids=((500_000, 1_000_000),),
        asks=((510_000, 2_000_000),),
        tick_size="0.01",
        status=status,
    )


def kinds(log: list[tuple[str, str]]) -> list[str]:
    return [k for k, _ in log]


def synced_sync(target: Target, clock: list[int] | None = None) -> BookSync:
    sync = BookSync(target, retry_after_s=1.0, clock_ns=(lambda: clock[0]) if clock else lambda: 1)
    sync.follow([A])
    assert target.take() == [("request", A)]
    sync.on_reply(m.SnapshotReply(snapshot=snap(10)), A)
    assert kinds(target.take()) == ["frame"]
    assert sync.synced(A) and sync.epoch_of(A) == 5
    return sync


def test_in_order_applied_duplicates_dropped_a_gap_waits_and_asks() -> None:
    t = Target()
    sync = synced_sync(t)
    sync.on_message(delta(11))
    sync.on_message(delta(11))
    assert kinds(t.take()) == ["frame"] and sync.stats.duplicates == 1
    sync.on_message(delta(13))  # 12 lost
    assert t.take() == [("reset", f"{A}:gap"), ("request", A)]
    sync.on_message(delta(14))
    assert t.take() == [], "buffered, not applied, not asked twice"
    sync.on_reply(m.SnapshotReply(snapshot=snap(12)), A)
    log = t.take()
    assert kinds(log) == ["frame", "frame", "frame"], "the snapshot, then 13 and 14 from the buffer"
    assert '"size":"13"' in log[1][1] and '"size":"14"' in log[2][1]
    assert sync.synced(A)


def test_a_newer_epoch_starts_over_an_older_one_is_ignored() -> None:
    t = Target()
    sync = synced_sync(t)
    sync.on_message(delta(1, epoch=9))  # the new worker's first message
    log = t.take()
    assert log[0] == ("reset", f"{A}:epoch") and kinds(log) == ["reset", "frame"]
    assert sync.synced(A) and sync.epoch_of(A) == 9 and sync.stats.epoch_changes == 1
    sync.on_message(delta(11, epoch=5))  # the old worker, paused, speaks again
    sync.on_reply(m.SnapshotReply(snapshot=snap(50, epoch=5)), A)
    assert t.take() == [] and sync.stats.old_epoch == 1 and sync.stats.replies_ignored == 1
    sync.on_message(delta(7, epoch=12))  # a newer epoch joined late: resnapshot
    assert t.take() == [("reset", f"{A}:epoch"), ("request", A)]
    assert not sync.synced(A)


def test_a_snapshot_the_worker_does_not_trust_resets_instead_of_seeding() -> None:
    t = Target()
    sync = BookSync(t)
    sync.follow([A])
    t.take()
    sync.on_reply(m.SnapshotReply(snapshot=snap(3, status="awaiting_snapshot")), A)
    assert t.take() == [("reset", f"{A}:worker_awaiting_snapshot")]
    assert sync.synced(A), "in sync with a worker that waits too: its next snapshot seeds both"
    sync.on_message(snap(4))
    assert kinds(t.take()) == ["frame"]
    sync.on_message(m.Status(condition="0xc", asset=A, epoch=5, seq=5, old="ok", new="inconsistent", reason="x"))
    assert t.take() == [("reset", f"{A}:worker_inconsistent")]


def test_unanswered_requests_are_asked_again_and_resolutions_pass_once() -> None:
    t = Target()
    clock = [1_000]
    sync = BookSync(t, retry_after_s=1.0, clock_ns=lambda: clock[0])
    sync.follow([A, B])
    assert t.take() == [("request", A), ("request", B)]
    assert sync.due() == []
    clock[0] += 2_000_000_000
    assert sorted(sync.due()) == [A, B]
    for asset in (A, B):
        sync.on_reply(m.SnapshotReply(snapshot=snap(1, asset=asset)), asset)
    t.take()
    for asset in (A, B):
        sync.on_message(
            m.Resolved(
                condition="0xc",
                asset=asset,
                epoch=5,
                seq=2,
                asset_ids=(A, B),
                winning_asset_id=A,
                winning_outcome="Yes",
            )
        )
    assert kinds(t.take()) == ["frame"], "one market_resolved for the market"


def test_a_heartbeat_ahead_of_the_reader_is_a_gap() -> None:
    t = Target()
    sync = synced_sync(t)
    sync.on_message(delta(11))
    t.take()
    assert sync.check_published(5, {A: 11}) == []
    assert sync.check_published(4, {A: 99}) == [], "another epoch's counts say nothing"
    assert sync.check_published(5, {A: 12}) == [A]
    assert t.take() == [("reset", f"{A}:gap"), ("request", A)]


def test_the_books_of_a_worker_that_stopped_beating_wait() -> None:
    """BusFeed's watchdog: an epoch silent for lease_ttl_s has its books reset and resnapshotted."""
    frames: list[bytes] = []
    resets: list[tuple[tuple[str, ...], str]] = []
    feed = BusFeed(
        BusSettings(lease_ttl_s=1.0),
        [A],
        lambda text, _ns: frames.append(text),
        lambda a, r: resets.append((tuple(a), r)),
    )
    feed.sync.follow([A])
    feed.sync.on_reply(m.SnapshotReply(snapshot=snap(10)), A)
    assert feed.sync.synced(A) and len(frames) == 1
    feed._beats[5] = time.monotonic_ns()
    feed._check_beats()
    assert feed.sync.synced(A) and not resets
    feed._beats[5] = time.monotonic_ns() - 2_000_000_000  # two ttl without a beat
    feed._check_beats()
    assert not feed.sync.synced(A)
    assert resets == [((A,), "worker epoch 5 silent")]
