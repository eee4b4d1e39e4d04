"""The synthetic frame generator (mock-ws, bench, demo recording): deterministic and self-consistent."""

from __future__ import annotations

import json
from decimal import Decimal

from core.feed.demo_recording import demo_recording_lines
from core.feed.processor import FeedProcessor
from core.feed.replay import iter_frames
from core.feed.synth import FrameGenerator
from core.feed.synth_markets import demo_markets, pair_markets
from core.types import BookStatus
from tests.conftest import PROJECT_FIXTURES

DEMO = PROJECT_FIXTURES / "recordings" / "demo_market.jsonl"
ASSETS = [str(10**76 + i) for i in range(6)]


def test_same_seed_same_frames_other_seed_other_frames() -> None:
    def take(seed: int) -> list[str]:
        gen = FrameGenerator(ASSETS, seed, levels=10)
        return gen.snapshot_frames(ts_ms=1) + list(gen.frames(300, 10))

    assert take(3) == take(3)
    assert take(3) != take(4)


def test_frames_are_the_current_format_with_a_true_top() -> None:
    gen = FrameGenerator(ASSETS, 11, levels=20)
    processor = FeedProcessor(known_assets=set(ASSETS))
    for frame in gen.snapshot_frames(ts_ms=1):
        processor.process(frame, 1)
    kinds: set[str] = set()
    now = 2
    for i in range(5_000):
        frame = gen.next_frame(100 + i)
        kinds.add(json.loads(frame)["event_type"])
        now += 1_000_000
        processor.process(frame, now)
        if '"price_changes"' in frame:
            entry = json.loads(frame)["price_changes"][0]
            assert set(entry) == {"asset_id", "price", "size", "side", "hash", "best_bid", "best_ask"}
    for frame in gen.drain():  # end on a complete burst
        now += 1_000_000
        processor.process(frame, now)
    processor.finish(now + 1)
    assert kinds == {"price_change", "last_trade_price"}
    assert processor.counters.total == 0 and processor.faults.total == 0
    for asset, book in processor.books.items():
        assert book.status is BookStatus.OK
        assert (book.best_bid(), book.best_ask()) == gen.top(asset)
        assert 3 <= min(book.level_counts())


def test_binary_books_mirror_each_other() -> None:
    gen = FrameGenerator(ASSETS[:2], 5, levels=8)
    processor = FeedProcessor()
    for frame in gen.snapshot_frames():
        processor.process(frame, 1)
    for i, frame in enumerate([*gen.frames(500, 10), *gen.drain()]):
        processor.process(frame, 2 + i)
    yes, no = (processor.books[a] for a in ASSETS[:2])
    assert [(1 - p, s) for p, s in yes.asks()] == no.bids()
    assert [(1 - p, s) for p, s in yes.bids()] == no.asks()


def test_pairing_and_demo_markets() -> None:
    markets = pair_markets(ASSETS[:5], seed=1)
    assert [m.token_ids[0] for m in markets] == ASSETS[:5:2]
    assert len(markets) == 3 and markets[2].token_ids[1] not in ASSETS
    demo = demo_markets()
    assert [m.neg_risk for m in demo] == [False, True, True, True]
    assert len({m.neg_risk_market_id for m in demo[1:]}) == 1


def test_demo_recording_fixture_is_current() -> None:
    """fixtures/recordings/demo_market.jsonl is exactly what the generator writes
    (regenerate with: uv run python -m core.feed.demo_recording fixtures/recordings/demo_market.jsonl)."""
    assert DEMO.read_text() == "".join(line + "\n" for line in demo_recording_lines())


def test_demo_recording_replays_clean_and_has_a_dutch_book_moment() -> None:
    processor = FeedProcessor()
    yes = [m.token_ids[0] for m in demo_markets() if m.neg_risk]
    cheapest = Decimal(9)
    for ns, frame in iter_frames(DEMO):
        processor.process(frame, ns)
        asks = [processor.books[t].best_ask() for t in yes if t in processor.books]
        if len(asks) == len(yes) and None not in asks:
            cheapest = min(cheapest, sum(asks, Decimal(0)))  # type: ignore[arg-type]
    processor.finish(10**20)
    assert len(processor.books) == 8
    assert all(b.status is BookStatus.OK for b in processor.books.values())
    assert processor.counters.total == 0 and processor.faults.total == 0
    assert cheapest < 1  # buying every outcome once cost less than 1 at some point
