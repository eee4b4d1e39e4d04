"""Spread capture: post-only quotes one tick inside a wide spread, skewed by inventory.

Pure and stateless: the caller passes in its inventory, whether trading is armed and the quotes
it has resting, and gets back a decision (quote anew, keep what rests, or pull everything).

Pricing: fair = mid - skew_per_share x inventory (long -> both prices lower, so the ask fills
sooner and the bid later). Quotes sit at fair -/+ half, where half = spread/2 - 1 tick: with no
inventory that is one tick inside each side of the book. A quote never crosses the book (it is
post-only: the venue would reject it) and the bid stays below the ask.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from core.types import BookStatus, BookView, Intent, MarketInfo, OrderType, Side, TokenInfo

ZERO = Decimal(0)
ONE = Decimal(1)
TWO = Decimal(2)
SIZE_QUANTUM = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class SpreadConfig:
    min_spread_ticks: int
    """Quote only when best ask - best bid is at least this many ticks (>= 2)."""
    requote_ticks: int
    """Replace resting quotes only when the fair price moved by at least this many ticks (>= 1)."""
    size: Decimal
    """Shares per quote."""
    skew_per_share: Decimal
    """Price shift per share of inventory (pUSD); 0 = no skew."""
    max_inventory: Decimal
    """A bid is not quoted when its fill would take the position above this (shares)."""
    min_size: Decimal = Decimal(5)
    """Floor on quote sizes; the market's own ``min_order_size`` applies too (larger wins)."""
    allow_short: bool = False
    """Polymarket sells only shares you hold: by default the ask is capped at the inventory."""

    def __post_init__(self) -> None:
        for name in ("min_spread_ticks", "requote_ticks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if self.min_spread_ticks < 2:
            raise ValueError(f"min_spread_ticks must be >= 2 (room for a quote inside), got {self.min_spread_ticks}")
        if self.requote_ticks < 1:
            raise ValueError(f"requote_ticks must be >= 1, got {self.requote_ticks}")
        if self.min_size <= 0:
            raise ValueError(f"min_size must be > 0, got {self.min_size}")
        if self.size.quantize(SIZE_QUANTUM, rounding=ROUND_DOWN) < self.min_size:
            raise ValueError(f"size {self.size} is below min_size {self.min_size}")
        if self.skew_per_share < 0:
            raise ValueError(f"skew_per_share must be >= 0, got {self.skew_per_share}")
        if self.max_inventory < 0:
            raise ValueError(f"max_inventory must be >= 0, got {self.max_inventory}")


@dataclass(frozen=True, slots=True)
class Quotes:
    """What rests (or should rest) on one token; ``fair`` is the price they were built around."""

    fair: Decimal
    bid: Intent | None
    ask: Intent | None


class QuoteAction(enum.StrEnum):
    QUOTE = "quote"  # cancel what rests, place ``quotes``
    KEEP = "keep"  # leave the resting quotes alone
    PULL = "pull"  # cancel everything on this token


@dataclass(frozen=True, slots=True)
class QuoteDecision:
    action: QuoteAction
    quotes: Quotes | None
    reason: str


def _pull(reason: str) -> QuoteDecision:
    return QuoteDecision(QuoteAction.PULL, None, reason)


def _floor(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def _ceil(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick


@dataclass(frozen=True, slots=True)
class _Prices:
    """Where quotes would go: on the grid, inside the book, around the (skewed) fair price."""

    tick: Decimal
    best_bid: Decimal
    best_ask: Decimal
    spread_ticks: Decimal
    fair: Decimal
    bid: Decimal
    ask: Decimal


def _prices(cfg: SpreadConfig, market: MarketInfo, book: BookView, inventory: Decimal) -> _Prices | str:
    """The quote prices, or why there are none (a reason to pull)."""
    best_bid = book.best_bid()
    best_ask = book.best_ask()
    if best_bid is None or best_ask is None:
        return "one-sided book: no mid to quote around"
    if best_bid >= best_ask:
        return f"book crossed ({best_bid} >= {best_ask})"
    tick = market.tick_size if market.tick_size >= book.tick_size else book.tick_size
    spread = best_ask - best_bid
    spread_ticks = spread / tick
    if spread_ticks < cfg.min_spread_ticks:
        return f"spread {spread_ticks.normalize():f} ticks < {cfg.min_spread_ticks}"
    fair = (best_bid + best_ask) / TWO - cfg.skew_per_share * inventory
    half = spread / TWO - tick
    if half < tick / TWO:
        half = tick / TWO  # a 2-tick spread: join the best prices rather than meet in the middle
    # highest bid strictly below the best ask, lowest ask strictly above the best bid, on the grid
    bid_cap = _ceil(best_ask, tick) - tick
    ask_floor = _floor(best_bid, tick) + tick
    bid = min(_floor(fair - half, tick), bid_cap)
    ask = max(_ceil(fair + half, tick), ask_floor)
    return _Prices(tick, best_bid, best_ask, spread_ticks, fair, bid, ask)


def _bid_size(cfg: SpreadConfig, p: _Prices, size: Decimal, inventory: Decimal) -> Decimal | str:
    """The bid's size, or why there is no bid."""
    if p.bid < p.tick:
        return "bid below the lowest price"
    if inventory + size > cfg.max_inventory:
        return f"bid would take inventory {inventory} past {cfg.max_inventory}"
    return size


def _ask_size(
    cfg: SpreadConfig, p: _Prices, size: Decimal, min_size: Decimal, inventory: Decimal, in_hand: Decimal
) -> Decimal | str:
    """The ask's size, or why there is no ask. Without ``allow_short`` only shares in hand (settled,
    and not sold already) are offered."""
    if p.ask > ONE - p.tick:
        return "ask above the highest price"
    if cfg.allow_short:
        if inventory - size < -cfg.max_inventory:
            return f"ask would take inventory {inventory} past -{cfg.max_inventory}"
        return size
    held = in_hand.quantize(SIZE_QUANTUM, rounding=ROUND_DOWN) if in_hand > 0 else ZERO
    sellable = held if held < size else size
    if sellable < min_size:
        return f"holding {inventory}: under {min_size} shares to sell"
    return sellable


def _unavailable(market: MarketInfo, book: BookView, armed: bool) -> str | None:
    """Why nothing may rest on this token at all, if so."""
    if not armed:
        return "trading disarmed"
    if book.status != BookStatus.OK:
        return f"book {book.status}"
    if market.closed or not market.active:
        return "market closed"
    return None


class SpreadQuoter:
    def __init__(self, cfg: SpreadConfig) -> None:
        self.cfg = cfg

    def quote(
        self,
        market: MarketInfo,
        token: TokenInfo | str,
        book: BookView,
        inventory: Decimal,
        armed: bool,
        current_quotes: Quotes | None,
        settling: Decimal = ZERO,
    ) -> QuoteDecision:
        """``inventory``: the shares held (settled); ``settling``: the net shares of orders the venue
        matched whose trades have not settled yet (buys +, sells -). Skew and limits go by the two
        together (the position once they settle); an ask offers only shares in hand."""
        cfg = self.cfg
        token_id = token.token_id if isinstance(token, TokenInfo) else token
        unavailable = _unavailable(market, book, armed)
        if unavailable is not None:
            return _pull(unavailable)
        position = inventory + settling
        p = _prices(cfg, market, book, position)
        if isinstance(p, str):
            return _pull(p)
        min_size = market.min_order_size if market.min_order_size > cfg.min_size else cfg.min_size
        size = cfg.size.quantize(SIZE_QUANTUM, rounding=ROUND_DOWN)
        if size < min_size:
            return _pull(f"quote size {size} is below the market minimum {min_size}")
        bid = _bid_size(cfg, p, size, position)
        ask = _ask_size(cfg, p, size, min_size, position, min(inventory, position))
        bid_size = None if isinstance(bid, str) else bid
        ask_size = None if isinstance(ask, str) else ask
        why_not = [side for side in (bid, ask) if isinstance(side, str)]
        if bid_size is None and ask_size is None:
            return _pull("nothing to quote: " + "; ".join(why_not))

        if current_quotes is not None:
            kept = self._keep(current_quotes, p.fair, p.tick, p.best_bid, p.best_ask, bid_size, ask_size)
            if kept is not None:
                return QuoteDecision(QuoteAction.KEEP, current_quotes, kept)
        return self._new_quotes(market, token_id, p, bid_size, ask_size, position, why_not)

    def _new_quotes(
        self,
        market: MarketInfo,
        token_id: str,
        p: _Prices,
        bid_size: Decimal | None,
        ask_size: Decimal | None,
        inventory: Decimal,
        why_not: list[str],
    ) -> QuoteDecision:
        group_id = self._group_id(
            token_id, p.fair, p.bid if bid_size is not None else None, p.ask if ask_size is not None else None
        )
        context = f"fair {p.fair} spread {p.spread_ticks.normalize():f} ticks inventory {inventory}"
        bid = None
        if bid_size is not None:
            bid = self._intent(market, token_id, Side.BUY, p.bid, bid_size, group_id, f"spread bid: {context}")
        ask = None
        if ask_size is not None:
            ask = self._intent(market, token_id, Side.SELL, p.ask, ask_size, group_id, f"spread ask: {context}")
        reason = f"quote {p.bid if bid else '-'} / {p.ask if ask else '-'} around {context}"
        if why_not:
            reason += " (" + "; ".join(why_not) + ")"
        return QuoteDecision(QuoteAction.QUOTE, Quotes(fair=p.fair, bid=bid, ask=ask), reason)

    def _keep(
        self,
        current: Quotes,
        fair: Decimal,
        tick: Decimal,
        best_bid: Decimal,
        best_ask: Decimal,
        bid_size: Decimal | None,
        ask_size: Decimal | None,
    ) -> str | None:
        """Why the resting quotes may stay, or None when they must be replaced."""
        if (current.bid is None) != (bid_size is None) or (current.ask is None) != (ask_size is None):
            return None  # a side must appear or go
        if current.bid is not None and bid_size is not None:
            if current.bid.price >= best_ask or current.bid.size > bid_size:
                return None  # the book moved through it, or it is now larger than allowed
        if current.ask is not None and ask_size is not None:
            if current.ask.price <= best_bid or current.ask.size > ask_size:
                return None
        moved = abs(fair - current.fair) / tick
        if moved >= self.cfg.requote_ticks:
            return None
        return f"fair moved {moved.normalize():f} ticks < {self.cfg.requote_ticks}: keep resting quotes"

    @staticmethod
    def _group_id(token_id: str, fair: Decimal, bid: Decimal | None, ask: Decimal | None) -> str:
        digest = hashlib.sha256(f"{token_id}|{fair}|{bid}|{ask}".encode()).hexdigest()
        return f"quote-{digest[:24]}"

    @staticmethod
    def _intent(
        market: MarketInfo, token_id: str, side: Side, price: Decimal, size: Decimal, group_id: str, reason: str
    ) -> Intent:
        return Intent(
            market=market.condition_id,
            token_id=token_id,
            side=side,
            price=price,
            size=size,
            order_type=OrderType.GTC,
            post_only=True,
            group_id=group_id,
            reason=reason,
        )
