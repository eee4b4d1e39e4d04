"""The bus end to end without a server: a worker's pipeline -> MdPublisher -> bytes -> BookSync ->
a reader's pipeline, over the demo recording (snapshots, thousands of deltas, trades, bad frames).

The reader's books must equal the worker's on every asset, also when messages are lost on the way
(each loss is a gap: the book waits, the worker's snapshot answer heals it) or arrive twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.bus import messages as m
from core.bus.publish import MdPublisher
from core.bus.sync import BookSync
from core.feed.connection import ConnectionEvent, ConnectionState
from core.feed.events import FeedEvent, TradePrint
from core.feed.pipeline import IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.replay import iter_frames
from core.sim.demo_data import DEMO_RECORDING
from core.types import BookStatus

Books = dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]], BookStatus]]


class Reader:
    """The reader's side: its own processor and pipeline, fed by BookSync."""

    def __init__(self) -> None:
        self.processor = FeedProcessor()
        self.pipeline = IngestPipeline(self.processor, None)
        self.events: list[FeedEvent] = []
        self.pipeline.add_sink(self.events.extend)
        self.asked: list[str] = []
        self.now = 0
        self.sync = BookSync(self)

    def frame(self, data: bytes) -> None:
        self.pipeline.on_frame(data.decode(), self.now)

    def reset(self, assets: Sequence[str], reason: str) -> None:
        self.pipeline.on_connection_event(ConnectionEvent(0, ConnectionState.RECONNECTED, tuple(assets), reason))

    def request(self, asset: str) -> None:
        self.asked.append(asset)


def books(processor: FeedProcessor) -> Books:
    return {a: (b.bids_units(), b.asks_units(), b.status) for a, b in processor.books.items()}


def recording_assets() -> list[str]:
    probe = FeedProcessor()
    for recv_ns, text in iter_frames(DEMO_RECORDING):
        probe.process(text, recv_ns)
    return sorted(probe.books)


async def run(*, lose_every: int = 0, repeat_every: int = 0) -> tuple[FeedProcessor, Reader, MdPublisher]:
    worker = FeedProcessor()
    pipeline = IngestPipeline(worker, None)
    publisher = MdPublisher("p", worker.books)
    pipeline.add_sink(publisher.on_events)
    publisher.begin_epoch(7, [])
    reader = Reader()
    reader.sync.follow(recording_assets())
    wire: list[bytes] = []

    def send(subject: str, payload: bytes) -> None:
        wire.append(payload)

    sent = 0
    for recv_ns, text in iter_frames(DEMO_RECORDING):
        reader.now = recv_ns
        pipeline.on_frame(text, recv_ns)
        await publisher.flush(send)
        for payload in wire:
            sent += 1
            if lose_every and sent % lose_every == 0:
                continue
            reader.sync.on_message(m.decode(payload))
            if repeat_every and sent % repeat_every == 0:
                reader.sync.on_message(m.decode(payload))
        wire.clear()
        answer(reader, publisher)
    end = max(b.last_update_ns for b in worker.books.values()) + 10**9
    pipeline.tick(end)
    await publisher.flush(send)
    for payload in wire:
        reader.sync.on_message(m.decode(payload))
    reader.pipeline.tick(end)
    answer(reader, publisher)
    # the worker's heartbeat says how far it published: a lost last message shows there
    reader.sync.check_published(publisher.epoch, publisher.take_changed())
    answer(reader, publisher)
    return worker, reader, publisher


def answer(reader: Reader, publisher: MdPublisher) -> None:
    """The worker answers what was asked once the book is between matches (as the worker's
    request handler waits for it), after the batch."""
    waiting = []
    while reader.asked:
        asset = reader.asked.pop(0)
        if publisher.settled(asset):
            reader.sync.on_reply(m.SnapshotReply(snapshot=publisher.snapshot(asset)), asset)
        else:
            waiting.append(asset)
    reader.asked.extend(dict.fromkeys(waiting))


async def test_the_reader_holds_the_workers_books() -> None:
    worker, reader, publisher = await run()
    assert len(worker.books) == 18
    assert books(reader.processor) == books(worker)
    stats = reader.sync.stats
    assert stats.gaps == 0 and stats.lost == 0 and stats.applied == publisher.stats.messages
    assert publisher.stats.by_kind is not None and publisher.stats.by_kind["delta"] > 1000
    trades = [e for e in reader.events if isinstance(e, TradePrint)]
    assert len(trades) == publisher.stats.by_kind["trade"] > 0


@pytest.mark.parametrize(("lose_every", "repeat_every"), [(97, 0), (13, 0), (0, 7), (41, 11)])
async def test_lost_and_repeated_messages_heal_by_snapshot(lose_every: int, repeat_every: int) -> None:
    worker, reader, _publisher = await run(lose_every=lose_every, repeat_every=repeat_every)
    assert books(reader.processor) == books(worker)
    stats = reader.sync.stats
    if lose_every:
        assert stats.gaps > 0 and stats.replies_applied > 0
    if repeat_every:
        assert stats.duplicates > 0


async def test_a_book_behind_a_gap_is_never_ok_until_resnapshotted() -> None:
    """Between the lost message and the answer the reader's book is not tradeable."""
    worker = FeedProcessor()
    pipeline = IngestPipeline(worker, None)
    publisher = MdPublisher("p", worker.books)
    pipeline.add_sink(publisher.on_events)
    publisher.begin_epoch(1, [])
    reader = Reader()
    reader.sync.follow(recording_assets())
    wire: list[bytes] = []
    frames = list(iter_frames(DEMO_RECORDING))
    for recv_ns, text in frames[:200]:
        pipeline.on_frame(text, recv_ns)
    await publisher.flush(lambda _s, p: wire.append(p))
    messages = [m.decode(p) for p in wire]
    deltas = [i for i, msg in enumerate(messages) if isinstance(msg, m.Delta)]
    victim = messages[deltas[len(deltas) // 2]]
    for msg in messages:
        if msg is not victim:
            reader.sync.on_message(msg)
    book = reader.processor.books[victim.asset]
    later = [x for x in messages if x.asset == victim.asset and x.seq > victim.seq]
    assert later, "the gap is seen by the next message of that asset"
    assert book.status is BookStatus.AWAITING_SNAPSHOT
    assert not reader.sync.synced(victim.asset) and victim.asset in reader.asked
    reader.sync.on_reply(m.SnapshotReply(snapshot=publisher.snapshot(victim.asset)), victim.asset)
    assert reader.sync.synced(victim.asset)
    assert book.bids_units() == worker.books[victim.asset].bids_units()
    assert book.asks_units() == worker.books[victim.asset].asks_units()
    assert book.status is worker.books[victim.asset].status
