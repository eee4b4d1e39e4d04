"""The Dutch book's search in integer units emits exactly what the Decimal search emitted.

The oracle is the evaluation as it was before (tests/unit/strategy_dutch_reference.py, Decimal
throughout). Both run on the same books: the project's demo recording replayed through the feed
processor, the bench's 20-outcome event under its random updates, and generated books (the
feed's own Book and a static BookView whose Decimals are spelled with trailing zeros). Every
figure is compared as text, so a Decimal that is equal in value but differs in exponent (which
the group id hashes) fails as surely as a different value.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.feed.book import Book
from core.feed.processor import FeedProcessor
from core.feed.synth_markets import demo_markets
from core.strategies.dutch import DutchConfig, DutchOpportunity, evaluate_binary, evaluate_event
from core.types import BookStatus, BookView, MarketInfo, OrderType, Side, TokenInfo
from tests.conftest import PROJECT_FIXTURES
from tests.unit import strategy_dutch_reference as reference
from tests.unit.strategy_books import StaticBook

D = Decimal
DEMO = PROJECT_FIXTURES / "recordings" / "demo_market.jsonl"


def fingerprint(opp: DutchOpportunity | None) -> object:
    """Every field, Decimals as text (value and exponent)."""
    if opp is None:
        return None
    legs = tuple(
        (i.market, i.token_id, i.side, str(i.price), str(i.size), i.order_type, i.post_only, i.group_id, i.reason)
        for i in opp.legs
    )
    assert all(i.expiration == 0 and i.meta == {} for i in opp.legs)
    figures = (opp.sets, opp.total_cost, opp.total_fee, opp.worst_cost, opp.worst_fee, opp.safety_margin_usdc)
    return (
        opp.group_id,
        opp.kind,
        tuple(str(x) for x in figures),
        tuple(str(x) for x in opp.leg_costs),
        tuple(str(x) for x in opp.leg_deepest_levels),
        legs,
        str(opp.total_edge),
        opp.reason,
    )


def both(
    kind: str, markets: Sequence[MarketInfo], books: Mapping[str, BookView], cfg: DutchConfig, ts: object
) -> tuple[object, object]:
    if kind == "binary":
        new, old = (
            evaluate_binary(markets[0], books, cfg, ts=ts),
            reference.evaluate_binary(markets[0], books, cfg, ts=ts),
        )
    else:
        new, old = evaluate_event(markets, books, cfg, ts=ts), reference.evaluate_event(markets, books, cfg, ts=ts)
    return fingerprint(new), fingerprint(old)


# ---- the demo recording, replayed through the feed ---------------------------------------------


def demo_market_infos(rate: str) -> tuple[MarketInfo, list[MarketInfo]]:
    synth = demo_markets()

    def info(m: Any) -> MarketInfo:
        tokens = tuple(TokenInfo(t, o) for t, o in zip(m.token_ids, m.outcomes, strict=True))
        return MarketInfo(
            condition_id=m.condition_id,
            question=m.question,
            slug=m.slug,
            tokens=tokens,
            tick_size=m.tick_size,
            neg_risk=m.neg_risk,
            neg_risk_market_id=m.neg_risk_market_id,
            fee_rate=D(rate),
        )

    return info(synth[0]), [info(m) for m in synth[1:]]


DEMO_CONFIGS = [
    DutchConfig(safety_margin_usdc=D("0.005"), slippage_ticks=1),
    DutchConfig(safety_margin_usdc=D(0), slippage_ticks=0, fee_rate_override=D(0)),
    DutchConfig(safety_margin_usdc=D("0.001"), slippage_ticks=2, max_sets=D("33.33"), order_type=OrderType.FAK),
    DutchConfig(safety_margin_usdc=D(0), slippage_ticks=0, min_resting_size=D(0), min_marketable_notional=D(0)),
]


def test_the_demo_recording_gives_identical_opportunities() -> None:
    hits = 0
    for rate in ("0", "0.02", "0.0625"):
        binary, event = demo_market_infos(rate)
        ticks = {t.token_id: m.tick_size for m in (binary, *event) for t in m.tokens}
        processor = FeedProcessor(tick_sizes=ticks)
        processor.track(ticks, ticks)
        for n, line in enumerate(DEMO.read_text().splitlines()):
            record = json.loads(line)
            if not processor.process(record["frame"], record["recv_ns"]):
                continue
            for cfg in DEMO_CONFIGS:
                for kind, markets in (("binary", [binary]), ("neg_risk", event)):
                    new, old = both(kind, markets, processor.books, cfg, record["recv_ns"])
                    assert new == old, f"line {n + 1}, {kind}, rate {rate}, {cfg}"
                    hits += new is not None
    assert hits > 50, f"only {hits} opportunities: the comparison would prove little"


# ---- the bench's event under random updates ---------------------------------------------------


def bench_event(n: int, target: Decimal, tick: Decimal) -> tuple[list[MarketInfo], dict[str, Book], list[Decimal]]:
    markets, books, tops = [], {}, []
    base = (target / n).quantize(tick, rounding=ROUND_DOWN)
    extra = int((target - base * n) / tick)
    for i in range(n):
        top = max(tick, base + (tick if i < extra else 0))
        token = f"{i:02d}" + "7" * 75
        markets.append(
            MarketInfo(
                condition_id=f"0x{i:064x}",
                question=f"outcome {i}?",
                slug=f"outcome-{i}",
                tokens=(TokenInfo(token, "Yes"), TokenInfo(token + "0", "No")),
                tick_size=tick,
                neg_risk=True,
                neg_risk_market_id="0x" + "ab" * 32,
                fee_rate=D("0.02"),
            )
        )
        book = Book(token, tick)
        asks = [(top + tick * k, D(100 + 37 * k)) for k in range(20)]
        bids = [(top - tick * (k + 1), D(150 + 11 * k)) for k in range(20) if top - tick * (k + 1) > 0]
        book.apply_snapshot(bids, asks, ts=0)
        books[token] = book
        tops.append(top)
    return markets, books, tops


def test_the_bench_event_gives_identical_opportunities_update_by_update() -> None:
    cfg = DutchConfig(safety_margin_usdc=D("0.005"), slippage_ticks=1)
    hits = 0
    for target, tick in ((D("0.95"), D("0.001")), (D("0.955"), D("0.001")), (D("0.93"), D("0.01"))):
        markets, books, tops = bench_event(20, target, tick)
        rng = random.Random(f"{target}")
        leg_books = [books[m.tokens[0].token_id] for m in markets]
        lifted = [False] * 20
        for seq in range(1500):
            leg = rng.randrange(20)
            roll = rng.random()
            if lifted[leg] and roll < 0.5:
                lifted[leg] = False
                price, size = tops[leg], D(rng.randrange(1, 5_000_000)) / 10_000
            elif not lifted[leg] and roll < 0.15:
                lifted[leg] = True
                price, size = tops[leg], D(0)
            else:  # resize the best level, or a deeper one
                price = tops[leg] + tick * (int(lifted[leg]) + rng.choice([0, 0, 0, 1, 2]))
                size = D(rng.randrange(1, 5_000_000)) / 10_000
            leg_books[leg].apply_level(Side.SELL, price, size, seq)
            new, old = both("neg_risk", markets, books, cfg, seq)
            assert new == old, f"update {seq} at target {target}"
            hits += new is not None
    assert hits > 1000


# ---- generated books --------------------------------------------------------------------------

TICKS = ["0.1", "0.01", "0.005", "0.001", "0.0001"]


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[MarketInfo], dict[str, Book], dict[str, StaticBook], DutchConfig]:
    kind = draw(st.sampled_from(["binary", "neg_risk"]))
    n = 2 if kind == "binary" else draw(st.integers(2, 6))
    tick = D(draw(st.sampled_from(TICKS)))
    book_tick = D(draw(st.sampled_from([str(tick), str(tick), "0.01", "0.001"])))
    rate = D(draw(st.sampled_from(["0", "0.02", "0.04", "0.0625", "0.1"])))
    markets = []
    for i in range(n if kind == "neg_risk" else 1):
        markets.append(
            MarketInfo(
                condition_id=f"0xm{i}",
                question="?",
                slug=f"m{i}",
                tokens=(TokenInfo(f"t{i}y", "Yes"), TokenInfo(f"t{i}n", "No")),
                tick_size=tick,
                min_order_size=D(draw(st.sampled_from(["1", "5"]))),
                neg_risk=kind == "neg_risk",
                neg_risk_market_id="0xe" if kind == "neg_risk" else None,
                fee_rate=rate,
            )
        )
    tokens = [t.token_id for t in markets[0].tokens] if kind == "binary" else [m.tokens[0].token_id for m in markets]
    steps = int(1 / book_tick)
    # the best asks add up to a little under 1 (mostly an opportunity) or about 1 (mostly none)
    centre = max(1, int(steps * draw(st.sampled_from([0.85, 0.92, 0.96, 1.0])) / n))
    books: dict[str, Book] = {}
    static: dict[str, StaticBook] = {}
    places = -int(book_tick.as_tuple().exponent)
    for token in tokens:
        spread = max(1, steps // 100)
        first = draw(st.integers(max(1, centre - spread), min(steps - 1, centre + spread)))
        gaps = draw(st.lists(st.integers(1, max(1, steps // 100)), min_size=0, max_size=5))
        prices = [first]
        for g in gaps:
            if prices[-1] + g < steps:
                prices.append(prices[-1] + g)
        shares = draw(st.lists(st.integers(1, 300), min_size=len(prices), max_size=len(prices)))
        parts = draw(st.lists(st.integers(0, 999_999), min_size=len(prices), max_size=len(prices)))
        asks = [
            (book_tick * p, D(whole) + D(part) / 1_000_000)
            for p, whole, part in zip(prices, shares, parts, strict=True)
        ]
        book = Book(token, book_tick)
        book.apply_snapshot([], asks, ts=0)
        books[token] = book
        # the same levels, spelled with trailing zeros: the emitted Decimals follow the view's
        spelled = [(D(f"{p:.{places + 1}f}"), D(f"{s:.6f}")) for p, s in asks]
        static[token] = StaticBook(token, book_tick, [], spelled)
    if draw(st.integers(0, 9)) == 9:
        victim = draw(st.sampled_from(tokens))
        books[victim].set_status(BookStatus.STALE)
        static[victim].status = BookStatus.STALE
    cfg = DutchConfig(
        safety_margin_usdc=D(draw(st.sampled_from(["0", "0.001", "0.005", "0.01"]))),
        slippage_ticks=draw(st.integers(0, 2)),
        fee_rate_override=draw(st.sampled_from([None, None, D("0.002")])),
        max_sets=draw(st.sampled_from([None, None, D("7.5"), D("123.45"), D("33.333333")])),
        min_resting_size=D(draw(st.sampled_from(["0", "5"]))),
        min_marketable_notional=D(draw(st.sampled_from(["0", "1"]))),
    )
    return kind, markets, books, static, cfg


@settings(max_examples=400, deadline=None)
@given(cases())
def test_generated_books_give_identical_opportunities(
    case: tuple[str, list[MarketInfo], dict[str, Book], dict[str, StaticBook], DutchConfig],
) -> None:
    kind, markets, books, static, cfg = case
    new, old = both(kind, markets, books, cfg, 42)
    assert new == old
    new, old = both(kind, markets, static, cfg, 42)
    assert new == old


# ---- polybot dutch-run-replay on the demo feed: byte-identical output --------------------------


def test_dutch_run_replay_on_the_demo_feed_prints_the_same_bytes(
    db_with_markets: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.strategies import runner
    from polybot.cli.main import main

    feed = PROJECT_FIXTURES / "recordings" / "demo_feed.jsonl"
    runs = [
        ["demo-btc-above-150k-2026", "--fee-bps", "0", "--slippage-ticks", "0", "--safety-margin-usdc", "0"],
        ["demo-cup-2026-aurora"],
        ["demo-cup-2026-aurora", "--fee-bps", "20", "--slippage-ticks", "0", "--safety-margin-usdc", "0"],
        ["demo-city-mayor-2026-alice", "--safety-margin-usdc", "0", "--max-sets", "40.5", "--order-type", "FAK"],
    ]
    emitted = 0
    for extra in runs:
        outputs = []
        for impl in ("new", "reference"):
            if impl == "reference":
                monkeypatch.setattr(runner, "evaluate_binary", reference.evaluate_binary)
                monkeypatch.setattr(runner, "evaluate_event", reference.evaluate_event)
            for fmt in ([], ["--json"]):
                assert (
                    main(["dutch-run-replay", str(feed), extra[0], "--db-url", db_with_markets, *extra[1:], *fmt]) == 0
                )
                outputs.append(capsys.readouterr().out)
            monkeypatch.undo()
        assert outputs[:2] == outputs[2:], f"dutch-run-replay {' '.join(extra)}: the output changed"
        emitted += len(json.loads(outputs[1])["opportunities"])
    assert emitted > 10, f"only {emitted} opportunities: the comparison would prove little"
