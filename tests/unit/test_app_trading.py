"""Trading wiring: the pipeline's events reach the book policies first (alert and re-seed an
inconsistent book, re-grid a market whose tick changed), then the strategy runners with the gate's
armed state and their inventory, then paper fills; while stopping, no runner hears anything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal

from core.app.alerts import BookAlerts
from core.app.lifecycle import Lifecycle
from core.app.paper_fills import PaperFills
from core.app.reseed import Reseeder
from core.app.tick_sizes import TickSizes
from core.app.trading import TradingWiring
from core.events import Alert, AlertCleared, EventBus, Recorder
from core.execution.positions import Position, PositionBook
from core.execution.store import OrderRecord
from core.execution.types import Fill
from core.feed.frames import book_frame, change, price_change_frame
from core.feed.pipeline import IngestPipeline
from core.feed.processor import FeedProcessor
from core.registry import MarketRegistry
from core.strategies.runner import QuoterRunner
from core.strategies.spread import QuoteDecision, SpreadConfig, SpreadQuoter
from core.types import MarketInfo, Side, TokenInfo

YES, NO = "1111", "2222"
MARKET = MarketInfo("0xabc", "Will it?", "will-it", (TokenInfo(YES, "Yes"), TokenInfo(NO, "No")))
S = 1_000_000_000
REST_BOOK = json.dumps(
    {"market": "0xabc", "asset_id": YES, "timestamp": "50", "hash": "h", "tick_size": "0.01",
     "bids": [{"price": "0.40", "size": "7"}], "asks": [{"price": "0.60", "size": "9"}]}
).encode()  # fmt: skip


class Gate:
    armed = False


class QuoteLog:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_quote(self, decision: QuoteDecision, frame_no: int, recv_ns: int) -> None:
        q = decision.quotes
        self.seen.append(f"quote {q.bid.price if q and q.bid else '-'}/{q.ask.price if q and q.ask else '-'}")

    def on_pull(self, reason: str, frame_no: int, recv_ns: int) -> None:
        self.seen.append(f"pull {reason}")

    def on_fill(self, *args: object) -> None:
        self.seen.append("fill")


class Fetcher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def fetch_book(self, token_id: str) -> bytes:
        self.calls.append(token_id)
        return REST_BOOK


class Rules:
    def __init__(self) -> None:
        self.registered: list[tuple[str, Decimal]] = []

    def register_markets(self, markets: Iterable[MarketInfo]) -> None:
        self.registered += [(m.condition_id, m.tick_size) for m in markets]


class Signer:
    def __init__(self) -> None:
        self.ticks: list[tuple[str, Decimal]] = []

    def update_tick_size(self, token_id: str, tick_size: Decimal) -> None:
        self.ticks.append((token_id, tick_size))


class Rig:
    def __init__(self, *, paper: PaperFills | None = None) -> None:
        self.bus = EventBus()
        self.rec = Recorder(self.bus)
        self.life = Lifecycle()
        self.gate = Gate()
        self.registry = MarketRegistry([MARKET])
        self.processor = FeedProcessor(known_assets={YES, NO})
        self.fetcher, self.rules, self.signer, self.log = Fetcher(), Rules(), Signer(), QuoteLog()
        self.positions = PositionBook()
        self.settling: dict[str, Decimal] = {}  # token -> shares matched for us, not settled yet
        config = SpreadConfig(2, 1, Decimal(5), Decimal(0), Decimal(100))
        self.quoter = QuoterRunner(
            MARKET, MARKET.tokens[0], SpreadQuoter(config), self.log, self.processor, armed=False
        )
        self.wiring = TradingWiring(
            book_alerts=BookAlerts(self.bus, self.registry.label),
            reseeder=Reseeder(self.processor, self.fetcher, self.registry.label, cooldown_s=0),
            tick_sizes=TickSizes(self.registry, self.rules, self.signer),
            dutch_runners=[],
            quoters=[self.quoter],
            gate=self.gate,
            positions=self.positions,
            paper_fills=paper,
            lifecycle=self.life,
            settling=lambda token: self.settling.get(token, Decimal(0)),
        )
        self.pipeline = IngestPipeline(self.processor, None, sinks=[self.wiring.on_events])

    def frame(self, text: str, at_s: float) -> None:
        self.pipeline.on_frame(text, int(at_s * S))

    def said(self) -> list[str]:
        return [f"{type(e).__name__} {e.kind}" for e in self.rec.events if isinstance(e, Alert | AlertCleared)]


def test_quoters_follow_the_gate_and_their_inventory() -> None:
    rig = Rig()
    rig.frame(book_frame(YES, [("0.40", "10")], [("0.60", "10")]), 1)
    assert rig.log.seen == [] and not rig.quoter.armed  # disarmed: nothing quoted
    rig.gate.armed = True
    rig.positions.positions[YES] = Position(YES, shares=Decimal(7))
    rig.settling[YES] = Decimal(3)  # a bid the venue matched, its trade not settled yet
    rig.frame(book_frame(YES, [("0.41", "10")], [("0.60", "10")]), 2)
    assert rig.quoter.armed and (rig.quoter.inventory, rig.quoter.settling) == (Decimal(7), Decimal(3))
    assert rig.log.seen and rig.log.seen[-1].startswith("quote ")
    rig.gate.armed = False
    rig.frame(book_frame(YES, [("0.42", "10")], [("0.60", "10")]), 3)
    assert not rig.quoter.armed and rig.log.seen[-1].startswith("pull")


async def test_an_inconsistent_book_is_alerted_reseeded_and_its_healed_book_reaches_the_runners() -> None:
    rig = Rig()
    rig.gate.armed = True
    rig.frame(book_frame(YES, [("0.47", "10")], [("0.52", "15")]), 1)
    # the feed says the best bid is 0.48 where the change puts it at 0.49: a lost update
    rig.frame(price_change_frame([change(YES, "BUY", "0.49", "5", "0.48", "0.52")], ts_ms=10), 2)
    rig.frame(price_change_frame([change(YES, "BUY", "0.30", "5", "0.49", "0.52")], ts_ms=11), 3)
    assert rig.said() == ["Alert book_inconsistent"]
    await rig.life.drain(30)
    assert rig.fetcher.calls == [YES]
    assert rig.said() == ["Alert book_inconsistent", "AlertCleared book_inconsistent"]
    # quoted inside the re-seeded 0.40 / 0.60 book (no ask: nothing held to sell)
    assert rig.log.seen[-1] == "quote 0.41/-"


def test_a_tick_change_regrids_the_market_for_the_checks_and_the_signer() -> None:
    rig = Rig()
    rig.frame(book_frame(YES, [("0.40", "10")], [("0.60", "10")]), 1)
    tick = json.dumps({"event_type": "tick_size_change", "asset_id": YES, "market": "0xabc",
                       "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": "40"})  # fmt: skip
    rig.frame(tick, 2)
    rig.frame(tick, 3)  # the same tick again: nothing to do
    assert rig.registry.get("0xabc").tick_size == Decimal("0.001")  # type: ignore[union-attr]
    assert rig.rules.registered == [("0xabc", Decimal("0.001"))]
    assert rig.signer.ticks == [(YES, Decimal("0.001")), (NO, Decimal("0.001"))]


def test_while_stopping_the_book_policies_still_run_but_no_runner_hears_the_feed() -> None:
    rig = Rig()
    rig.gate.armed = True
    rig.life.begin_stop()
    rig.frame(book_frame(YES, [("0.40", "10")], [("0.60", "10")]), 1)
    assert rig.log.seen == [] and not rig.quoter.armed


class PaperRelayer:
    def __init__(self) -> None:
        self.checks: list[str] = []
        self.go = asyncio.Event()

    async def on_book_update(self, token_id: str) -> Sequence[Fill]:
        self.checks.append(token_id)
        await self.go.wait()
        return []


class Orders:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens

    def open_orders(self) -> list[OrderRecord]:
        return [
            OrderRecord(f"c{i}", "0xabc", t, Side.BUY, Decimal("0.4"), Decimal(5)) for i, t in enumerate(self.tokens)
        ]


async def test_paper_fills_are_checked_for_books_with_our_orders_and_for_trade_prints_once_at_a_time() -> None:
    relayer, life = PaperRelayer(), Lifecycle()
    rig = Rig(paper=PaperFills(relayer, Orders([YES]), life))
    rig.frame(book_frame(NO, [("0.40", "10")], [("0.60", "10")]), 1)  # no order of ours on NO
    rig.frame(book_frame(YES, [("0.40", "10")], [("0.60", "10")]), 2)
    rig.frame(book_frame(YES, [("0.41", "10")], [("0.60", "10")]), 3)  # a check is pending: no second one
    trade = json.dumps({"event_type": "last_trade_price", "asset_id": NO, "market": "0xabc", "price": "0.6",
                        "side": "BUY", "size": "3", "fee_rate_bps": "0", "timestamp": "60"})  # fmt: skip
    rig.frame(trade, 4)
    await asyncio.sleep(0)
    assert sorted(relayer.checks) == sorted([NO, YES])
    relayer.go.set()
    await life.drain(30)
    rig.frame(book_frame(YES, [("0.42", "10")], [("0.60", "10")]), 5)  # done: the next update checks again
    await life.drain(30)
    assert sorted(relayer.checks) == sorted([NO, YES, YES])
