"""Runners: book updates in (live feed or replay), strategy decisions out, to a sink.

A runner owns a :class:`~core.feed.processor.FeedProcessor` (the same decode -> validate ->
book code as the live feed), feeds it frames, and after every frame that touched one of its
tokens asks its strategy for a decision, which goes to a sink: the execution engine, or the
recording sinks below, which print each decision and, for the Dutch book, simulate the fills
against the book. Runners never read a clock; the time they report is the frame's receive time,
so replaying a recording twice gives byte-identical output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol, runtime_checkable

from core.feed.events import BookSnapshot, BookStatusChanged, FeedEvent, PriceChange, TickSizeChanged, TradePrint
from core.feed.processor import FeedProcessor
from core.strategies.dutch import DutchConfig, DutchOpportunity, evaluate_binary, evaluate_event
from core.strategies.dutch_fill import simulate_dutch_fill
from core.strategies.spread import QuoteAction, QuoteDecision, Quotes, SpreadQuoter
from core.types import BookStatus, BookView, MarketInfo, Side, TokenInfo

ZERO = Decimal(0)
_SIX = Decimal("0.000001")

Write = Callable[[str], object]


def touched_assets(events: Iterable[FeedEvent]) -> set[str]:
    """Assets whose book (or book status) one of these events changed."""
    out: set[str] = set()
    for ev in events:
        if isinstance(ev, PriceChange):
            out.update(e.asset_id for e in ev.entries)
        elif isinstance(ev, BookSnapshot | BookStatusChanged | TickSizeChanged):
            out.add(ev.asset_id)
    return out


def _q6(value: Decimal) -> Decimal:
    return value.quantize(_SIX, rounding=ROUND_HALF_EVEN)


def fmt(value: Decimal | None) -> str:
    """Exact, without trailing zeros or exponent: 80.00 -> 80, 1.60000 -> 1.6, 0E-5 -> 0."""
    if value is None:
        return "-"
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _processor_for(markets: Sequence[MarketInfo], processor: FeedProcessor | None) -> FeedProcessor:
    ticks = {t.token_id: m.tick_size for m in markets for t in m.tokens}
    if processor is None:
        processor = FeedProcessor(tick_sizes=ticks)
    processor.track(ticks, ticks)
    return processor


# ============================================================================ Dutch book


class DutchSink(Protocol):
    def on_opportunity(
        self, opp: DutchOpportunity, books: Mapping[str, BookView], frame_no: int, recv_ns: int
    ) -> None: ...


@dataclass
class DutchStats:
    frames: int = 0
    evaluations: int = 0
    opportunities: int = 0
    """Distinct opportunities emitted (an unchanged one seen again on the next frame is a repeat)."""
    repeats: int = 0
    sets: Decimal = ZERO
    expected_edge: Decimal = ZERO
    worst_edge: Decimal = ZERO

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "evaluations": self.evaluations,
            "opportunities": self.opportunities,
            "repeats": self.repeats,
            "sets": fmt(self.sets),
            "expected_edge": fmt(self.expected_edge),
            "worst_edge": fmt(self.worst_edge),
        }


class DutchRunner:
    """Runs the Dutch book on one binary market (one market given) or one neg-risk event (its
    member markets given) and reports each distinct opportunity to the sink."""

    def __init__(
        self,
        markets: Sequence[MarketInfo],
        cfg: DutchConfig,
        sink: DutchSink,
        processor: FeedProcessor | None = None,
    ) -> None:
        if not markets:
            raise ValueError("DutchRunner needs a market or the members of a neg-risk event")
        self.markets = list(markets)
        self.cfg = cfg
        self.sink = sink
        self.kind = "binary" if len(self.markets) == 1 else "neg_risk"
        if self.kind == "binary":
            self.tokens = [t.token_id for t in self.markets[0].tokens]
        else:
            self.tokens = [m.token("Yes").token_id for m in self.markets]
        self.processor = _processor_for(self.markets, processor)
        self.stats = DutchStats()
        self._watch = set(self.tokens)
        self._last_key: tuple[object, ...] | None = None

    @property
    def books(self) -> Mapping[str, BookView]:
        return self.processor.books

    def rates(self) -> dict[str, Decimal]:
        """Fee rate per leg token, as the strategy charges it."""
        override = self.cfg.fee_rate_override
        return {t.token_id: m.fee_rate if override is None else override for m in self.markets for t in m.tokens}

    def on_frame(self, recv_ns: int, frame: str | bytes) -> DutchOpportunity | None:
        self.stats.frames += 1
        return self.on_events(self.processor.process(frame, recv_ns), recv_ns)

    def on_events(self, events: Sequence[FeedEvent], recv_ns: int) -> DutchOpportunity | None:
        if not events or self._watch.isdisjoint(touched_assets(events)):
            return None
        return self.evaluate(recv_ns)

    def finish(self, now_ns: int) -> DutchOpportunity | None:
        """End of the stream: close open bursts, then evaluate the final books once more."""
        return self.on_events(self.processor.finish(now_ns), now_ns)

    def evaluate(self, recv_ns: int) -> DutchOpportunity | None:
        self.stats.evaluations += 1
        books = self.processor.books
        if self.kind == "binary":
            opp = evaluate_binary(self.markets[0], books, self.cfg, ts=recv_ns)
        else:
            opp = evaluate_event(self.markets, books, self.cfg, ts=recv_ns)
        if opp is None:
            self._last_key = None
            return None
        key = (tuple((leg.token_id, leg.price) for leg in opp.legs), opp.sets, opp.total_cost, opp.total_fee)
        if key == self._last_key:
            self.stats.repeats += 1
            return None
        self._last_key = key
        s = self.stats
        s.opportunities += 1
        s.sets += opp.sets
        s.expected_edge += opp.total_edge
        s.worst_edge += opp.worst_total_edge
        self.sink.on_opportunity(opp, books, s.frames, recv_ns)
        return opp


@dataclass
class RecordingDutchSink:
    """Prints every opportunity and a simulated fill of it against the current books."""

    write: Write
    rates: Mapping[str, Decimal]
    labels: Mapping[str, str] = field(default_factory=dict)
    records: list[dict[str, object]] = field(default_factory=list)
    simulated_edge: Decimal = ZERO
    incomplete_fills: int = 0
    quiet: bool = False

    def on_opportunity(self, opp: DutchOpportunity, books: Mapping[str, BookView], frame_no: int, recv_ns: int) -> None:
        fill = simulate_dutch_fill(opp, books, self.rates)
        if fill.edge is None:
            self.incomplete_fills += 1
        else:
            self.simulated_edge += fill.edge
        legs = [
            {
                "token_id": leg.token_id,
                "label": self.labels.get(leg.token_id, leg.token_id),
                "price": fmt(leg.price),
                "size": fmt(leg.size),
                "order_type": str(leg.order_type),
                "avg_price": fmt(avg),
                "simulated_filled": fmt(lf.filled),
                "simulated_cost": fmt(lf.cost),
                "simulated_fee": fmt(lf.fee),
            }
            for leg, avg, lf in zip(opp.legs, opp.leg_avg_prices, fill.legs, strict=True)
        ]
        record: dict[str, object] = {
            "n": len(self.records) + 1,
            "frame": frame_no,
            "recv_ns": recv_ns,
            "group_id": opp.group_id,
            "kind": opp.kind,
            "sets": fmt(opp.sets),
            "expected_edge": fmt(opp.total_edge),
            "edge_per_set": fmt(opp.edge_per_set),
            "worst_edge": fmt(opp.worst_total_edge),
            "worst_edge_per_set": fmt(opp.worst_edge_per_set),
            "cost": fmt(opp.total_cost),
            "fees": fmt(opp.total_fee),
            "legs": legs,
            "simulated_complete": fill.complete,
            "simulated_edge": None if fill.edge is None else fmt(fill.edge),
        }
        self.records.append(record)
        if self.quiet:
            return
        leg_text = " ".join(f"{leg['label']}@{leg['price']}" for leg in legs)
        sim = f"edge {fmt(fill.edge)}" if fill.edge is not None else "a leg would not fill (FOK killed)"
        self.write(
            f"#{record['n']} frame {frame_no} recv_ns {recv_ns} {opp.group_id} {opp.kind}: "
            f"{len(legs)} legs x {fmt(opp.sets)} sets, buy {leg_text}; expected edge {fmt(opp.total_edge)} "
            f"({fmt(opp.edge_per_set)}/set), worst case {fmt(opp.worst_total_edge)} "
            f"({fmt(opp.worst_edge_per_set)}/set); simulated fill: cost {fmt(fill.cost)} fees {fmt(fill.fees)} {sim}\n"
        )


# ============================================================================ spread quoter


class QuoteSink(Protocol):
    def on_quote(self, decision: QuoteDecision, frame_no: int, recv_ns: int) -> None: ...

    def on_pull(self, reason: str, frame_no: int, recv_ns: int) -> None: ...

    def on_fill(
        self, side: Side, price: Decimal, size: Decimal, inventory: Decimal, frame_no: int, recv_ns: int
    ) -> None: ...


@runtime_checkable
class PlacingSink(Protocol):
    """A sink that places quotes later (through the venue): it says what actually rests.

    With such a sink the runner's ``current`` is :meth:`resting_quotes`, never a decision not
    yet carried out; a sink without these methods is taken to place each decision at once.
    """

    def resting_quotes(self) -> Quotes | None:
        """The quotes resting now (placed and not canceled); None when nothing rests."""
        ...

    def settled(self) -> bool:
        """True when no decision is waiting or being carried out."""
        ...

    def stop(self) -> None:
        """No more quotes from this sink: decisions are dropped, and an order whose placement was
        already under way when it stopped is canceled as soon as it is placed."""
        ...


@dataclass
class QuoterStats:
    frames: int = 0
    decisions: int = 0
    quotes: int = 0
    keeps: int = 0
    pulls: int = 0
    idle: int = 0
    """Decisions to stay out while nothing rested (no order to cancel)."""
    fills: int = 0
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    cash: Decimal = ZERO
    """pUSD paid for buys minus received for sells (makers pay no fee)."""

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "decisions": self.decisions,
            "quotes": self.quotes,
            "keeps": self.keeps,
            "pulls": self.pulls,
            "idle": self.idle,
            "fills": self.fills,
            "bought": fmt(self.bought),
            "sold": fmt(self.sold),
            "cash_spent": fmt(self.cash),
        }


class QuoterRunner:
    """Runs a :class:`SpreadQuoter` on one outcome token.

    Paper fills: a trade print on the token at or through a resting quote fills it (a taker
    SELL at or below our bid, a taker BUY at or above our ask), up to the printed size. Queue
    position and fills arriving via the complement token are not modelled: this estimates
    what the quotes would have caught, it is not an exchange. With a :class:`PlacingSink`
    (the engine) there is no estimate: ``current`` is what the sink placed, and fills are the
    venue's.
    """

    def __init__(
        self,
        market: MarketInfo,
        token: TokenInfo,
        quoter: SpreadQuoter,
        sink: QuoteSink,
        processor: FeedProcessor | None = None,
        *,
        inventory: Decimal = ZERO,
        armed: bool = True,
    ) -> None:
        self.market = market
        self.token = token
        self.quoter = quoter
        self.sink = sink
        self.processor = _processor_for([market], processor)
        self.inventory = inventory
        self.settling = ZERO  # matched for us, not settled yet: counts for the limits (SpreadQuoter.quote)
        self.armed = armed
        self.stats = QuoterStats()
        self._placing = sink if isinstance(sink, PlacingSink) else None
        self._own: Quotes | None = None
        """What rests when the sink places every decision at once (replays, paper estimates)."""
        self._wanted: Quotes | None = None
        """The latest quotes handed to a placing sink, while it is still carrying decisions out."""

    def stop(self) -> None:
        """The market stops trading (resolved, or switched off): a placing sink places nothing more."""
        if self._placing is not None:
            self._placing.stop()

    @property
    def current(self) -> Quotes | None:
        """The quotes resting: what the sink actually placed (a placing sink), else the last decided."""
        placing = self._placing
        return self._own if placing is None else placing.resting_quotes()

    @property
    def book(self) -> BookView | None:
        return self.processor.books.get(self.token.token_id)

    def set_armed(self, armed: bool, recv_ns: int) -> QuoteDecision | None:
        self.armed = armed
        return self.decide(recv_ns)

    def on_frame(self, recv_ns: int, frame: str | bytes) -> QuoteDecision | None:
        self.stats.frames += 1
        return self.on_events(self.processor.process(frame, recv_ns), recv_ns)

    def on_events(self, events: Sequence[FeedEvent], recv_ns: int) -> QuoteDecision | None:
        token_id = self.token.token_id
        filled = False
        for ev in events:
            if isinstance(ev, TradePrint) and ev.asset_id == token_id:
                filled |= self._paper_fill(ev, recv_ns)
        if not filled and token_id not in touched_assets(events):
            return None
        return self.decide(recv_ns)

    def finish(self, now_ns: int) -> QuoteDecision | None:
        return self.on_events(self.processor.finish(now_ns), now_ns)

    def decide(self, recv_ns: int) -> QuoteDecision:
        book = self.book
        self.stats.decisions += 1
        if book is None:  # cannot happen: the runner tracks its token from the start
            raise RuntimeError(f"no book for {self.token.token_id}")
        placing = self._placing
        current = self.current
        # while a placing sink is still carrying decisions out, the latest one handed over is
        # what will rest: keep or replace against it (what rests now is about to be canceled)
        in_flight = placing is not None and not placing.settled()
        basis = self._wanted if in_flight else current
        d = self.quoter.quote(self.market, self.token, book, self.inventory, self.armed, basis, self.settling)
        frame_no = self.stats.frames
        if d.action is QuoteAction.QUOTE:
            self.stats.quotes += 1
            if placing is None:
                self._own = d.quotes
            else:
                self._wanted = d.quotes
            self.sink.on_quote(d, frame_no, recv_ns)
        elif d.action is QuoteAction.KEEP:
            self.stats.keeps += 1
        elif current is not None or in_flight:
            self.stats.pulls += 1
            self._own = self._wanted = None
            self.sink.on_pull(d.reason, frame_no, recv_ns)
        else:
            self.stats.idle += 1
        return d

    def _paper_fill(self, trade: TradePrint, recv_ns: int) -> bool:
        """The runner's own fill estimate, for a sink that places at once (a placing sink's
        fills reach the positions through the venue)."""
        cur = self._own
        if cur is None or self._placing is not None:
            return False
        price, size = trade.price, trade.size
        if trade.side is Side.SELL and cur.bid is not None and price <= cur.bid.price:
            intent, side = cur.bid, Side.BUY
        elif trade.side is Side.BUY and cur.ask is not None and price >= cur.ask.price:
            intent, side = cur.ask, Side.SELL
        else:
            return False
        qty = min(size, intent.size)
        left = intent.size - qty
        rest = replace(intent, size=left) if left > 0 else None
        self._own = replace(cur, bid=rest) if side is Side.BUY else replace(cur, ask=rest)
        s = self.stats
        s.fills += 1
        if side is Side.BUY:
            self.inventory += qty
            s.bought += qty
            s.cash += qty * intent.price
        else:
            self.inventory -= qty
            s.sold += qty
            s.cash -= qty * intent.price
        self.sink.on_fill(side, intent.price, qty, self.inventory, self.stats.frames, recv_ns)
        return True


@dataclass
class RecordingQuoteSink:
    """Prints every quote placement, pull and paper fill."""

    write: Write
    records: list[dict[str, object]] = field(default_factory=list)
    quiet: bool = False

    def _emit(self, record: dict[str, object], text: str) -> None:
        self.records.append(record)
        if not self.quiet:
            self.write(text)

    def on_quote(self, decision: QuoteDecision, frame_no: int, recv_ns: int) -> None:
        q = decision.quotes
        assert q is not None
        bid = f"bid {fmt(q.bid.size)} @ {fmt(q.bid.price)}" if q.bid else "no bid"
        ask = f"ask {fmt(q.ask.size)} @ {fmt(q.ask.price)}" if q.ask else "no ask"
        record = {
            "event": "quote",
            "frame": frame_no,
            "recv_ns": recv_ns,
            "fair": fmt(_q6(q.fair)),
            "bid": None if q.bid is None else {"price": fmt(q.bid.price), "size": fmt(q.bid.size)},
            "ask": None if q.ask is None else {"price": fmt(q.ask.price), "size": fmt(q.ask.size)},
            "reason": decision.reason,
        }
        self._emit(record, f"frame {frame_no} recv_ns {recv_ns} quote {bid} / {ask} (fair {fmt(_q6(q.fair))})\n")

    def on_pull(self, reason: str, frame_no: int, recv_ns: int) -> None:
        record = {"event": "pull", "frame": frame_no, "recv_ns": recv_ns, "reason": reason}
        self._emit(record, f"frame {frame_no} recv_ns {recv_ns} pull: {reason}\n")

    def on_fill(
        self, side: Side, price: Decimal, size: Decimal, inventory: Decimal, frame_no: int, recv_ns: int
    ) -> None:
        record = {
            "event": "fill",
            "frame": frame_no,
            "recv_ns": recv_ns,
            "side": str(side),
            "price": fmt(price),
            "size": fmt(size),
            "inventory": fmt(inventory),
        }
        self._emit(
            record,
            f"frame {frame_no} recv_ns {recv_ns} paper fill {side} {fmt(size)} @ {fmt(price)} -> inventory {fmt(inventory)}\n",
        )


def book_summary(book: BookView | None) -> dict[str, object]:
    if book is None:
        return {"status": None, "best_bid": None, "best_ask": None}
    bid, ask = book.best_bid(), book.best_ask()
    return {
        "status": str(book.status),
        "best_bid": None if bid is None else fmt(bid),
        "best_ask": None if ask is None else fmt(ask),
    }


def books_ok(books: Mapping[str, BookView], tokens: Iterable[str]) -> int:
    return sum(1 for t in tokens if (b := books.get(t)) is not None and b.status == BookStatus.OK)
