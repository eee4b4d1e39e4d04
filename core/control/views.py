"""The running service's read side: quotes with their Dutch edge, open orders, positions (complete
sets at 1 pUSD, the remainder at marks), markets.

Pure functions of what the facade's runtime holds (registry, books, engine state), so /quotes,
/orders, /positions and /markets read the same numbers the strategies and the engine use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from core.control.types import CompleteSetRow, Followed, MarketRow, OrderRow, PositionRow, QuoteRow
from core.fees import taker_fee
from core.types import BookView, MarketInfo

if TYPE_CHECKING:
    from core.app.watch import Watcher
    from core.execution.complete_sets import SetUnit, Valuation
    from core.execution.positions import Position
    from core.execution.store import OrderRecord
    from core.registry import MarketRegistry

AVG_COST_PLACES = Decimal("0.000001")


def followed(registry: MarketRegistry, watch: Watcher | None, books: Iterable[str] = ()) -> Followed:
    """What the service follows on the market feed, counted one way for the start notice and /status:
    the watcher's set (core.app.watch: the markets the configuration names, the watch list, the
    rules' selection, what is held; open ones only) and the stored markets those outcomes belong to.
    A runtime without a watcher (a test, a tool) follows what it holds books for."""
    assets = watch.desired_assets() if watch is not None else list(books)
    markets = {m.condition_id for a in assets if (m := registry.for_token(a)) is not None}
    return Followed(markets=len(markets), assets=len(assets), stored=len(registry))


def dutch_edge(
    registry: MarketRegistry, books: Mapping[str, BookView], m: MarketInfo, fee_override: Decimal | None
) -> Decimal | None:
    """Complete-set edge per set at the top of book: payout 1 minus the best asks of every leg and
    their taker fees (negative = no arbitrage). None when a leg has no ask or the set is not
    complete (augmented neg-risk events never are). The depth-aware decision is the strategy's."""
    legs = _complete_set(registry, m)
    if legs is None:
        return None
    cost = Decimal(0)
    for market, token_id in legs:
        book = books.get(token_id)
        ask = book.best_ask() if book is not None else None
        if ask is None:
            return None
        rate = fee_override if fee_override is not None else market.fee_rate
        cost += ask + taker_fee(Decimal(1), ask, rate)
    return Decimal(1) - cost


def _complete_set(registry: MarketRegistry, m: MarketInfo) -> list[tuple[MarketInfo, str]] | None:
    """The legs whose tokens pay exactly 1 together: a binary market's two outcomes, or the Yes of
    every member of a (non-augmented) neg-risk event."""
    if not (m.neg_risk and m.neg_risk_market_id):
        return [(m, t.token_id) for t in m.tokens] if len(m.tokens) == 2 else None
    members = registry.event_members(m.neg_risk_market_id)
    if m.neg_risk_augmented or any(x.neg_risk_augmented for x in members) or len(members) < 2:
        return None
    legs = []
    for member in members:
        try:
            legs.append((member, member.token("Yes").token_id))
        except KeyError:
            return None
    return legs


def quote_rows(
    registry: MarketRegistry,
    books: Mapping[str, BookView],
    markets: list[MarketInfo],
    *,
    named: bool,
    limit: int,
    fee_override: Decimal | None,
) -> list[QuoteRow]:
    """Top of book per outcome; a market the trader ``named`` is listed even without books."""
    rows: list[QuoteRow] = []
    for m in markets:
        edge = dutch_edge(registry, books, m, fee_override)
        for tok in m.tokens:
            book = books.get(tok.token_id)
            if book is None and not named:
                continue
            bid = book.best_bid() if book else None
            ask = book.best_ask() if book else None
            rows.append(
                QuoteRow(
                    market=m.slug or m.condition_id,
                    outcome=tok.outcome,
                    token_id=tok.token_id,
                    bid=bid,
                    ask=ask,
                    spread=(ask - bid) if bid is not None and ask is not None else None,
                    status=book.status.value if book else "no_book",
                    dutch_edge=edge,
                )
            )
        if len(rows) >= limit:
            break
    return rows[:limit]


def market_rows(markets: list[MarketInfo]) -> list[MarketRow]:
    return [
        MarketRow(
            condition_id=m.condition_id,
            slug=m.slug,
            question=m.question,
            outcomes=[t.outcome for t in m.tokens],
            tick_size=m.tick_size,
            neg_risk=m.neg_risk,
            fee_rate=m.fee_rate,
            active=m.active and not m.closed,
        )
        for m in markets
    ]


def order_names(registry: MarketRegistry, rec: OrderRecord) -> tuple[str, str]:
    """(the order's market slug, else its condition id; its outcome, else a token id prefix)."""
    tok = registry.token(rec.token_id)
    market = registry.get(rec.market)
    return (market.slug if market else "") or rec.market, tok.outcome if tok else rec.token_id[:10]


def order_row(registry: MarketRegistry, rec: OrderRecord) -> OrderRow:
    market, outcome = order_names(registry, rec)
    return OrderRow(
        client_order_id=rec.client_order_id,
        market=market,
        outcome=outcome,
        side=rec.side.value,
        price=rec.price,
        size=rec.size,
        filled=rec.filled_size,
        status=rec.status.value,
        mode=rec.mode,
        order_type=rec.order_type.value,
        post_only=rec.post_only,
    )


def order_rows(registry: MarketRegistry, orders: list[OrderRecord]) -> list[OrderRow]:
    """Open orders, oldest first (the order a trader placed them in)."""
    return [order_row(registry, rec) for rec in sorted(orders, key=lambda r: (r.created_ts, r.client_order_id))]


def position_rows(
    registry: MarketRegistry,
    positions: list[Position],
    mark: Callable[[str], Decimal | None],
    valuation: Valuation | None = None,
) -> list[PositionRow]:
    """One row per open position; with a ``valuation`` the shares in complete sets are worth 1 per
    set and only the remainder is marked."""
    rows = []
    for pos in positions:
        market = registry.for_token(pos.token_id)
        tok = registry.token(pos.token_id)
        price = mark(pos.token_id)
        avg = pos.avg_price or Decimal(0)
        shares, cost = valuation.remainder_of(pos.token_id) if valuation is not None else (pos.shares, pos.cost)
        in_sets = valuation.in_sets.get(pos.token_id, Decimal(0)) if valuation is not None else Decimal(0)
        rows.append(
            PositionRow(
                market=(market.slug if market else "") or pos.market or "?",
                outcome=tok.outcome if tok else pos.token_id[:10],
                token_id=pos.token_id,
                size=pos.shares,
                avg_cost=avg.quantize(AVG_COST_PLACES),
                mark=price,
                unrealised=shares * price - cost if price is not None else Decimal(0),
                realised=pos.realised,
                in_sets=in_sets,
            )
        )
    return rows


def set_rows(registry: MarketRegistry, valuation: Valuation) -> list[CompleteSetRow]:
    return [
        CompleteSetRow(
            unit=unit_name(registry, s.unit),
            kind=s.unit.kind,
            sets=s.sets,
            cost=s.cost,
            value=s.value,
            locked_edge=s.locked_edge,
        )
        for s in valuation.sets
    ]


def unit_name(registry: MarketRegistry, unit: SetUnit) -> str:
    """A binary market's slug; an event's members' common slug prefix (else its id, shortened)."""
    if unit.kind == "binary":
        market = registry.get(unit.key)
        return (market.slug if market else "") or unit.key[:16]
    words = [m.slug.split("-") for m in registry.event_members(unit.key) if m.slug]
    common: list[str] = []
    for parts in zip(*words, strict=False) if len(words) > 1 else ():
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    prefix = "-".join(common)
    return prefix if len(prefix) >= 3 else unit.key[:16]
