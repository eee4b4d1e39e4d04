"""Gamma items to domain types: :class:`core.types.MarketInfo` plus what the markets table keeps.

The domain rules live here: a tradable market has a condition id, decimal token ids (distinct),
one named outcome per token, a tick in (0, 1) and a minimum size >= 0, both exact in the
money unit (:func:`core.money.to_units`), and a fee rate read by :mod:`core.fees`. Nothing here
knows the database: how long a column is, or how many decimals it keeps, is the repository's
business (:mod:`core.markets.repository`).

Bad items (no condition id, undecodable token ids, outcomes/tokens length mismatch ...) are
counted by reason and logged; they never abort a page. Recoverable oddities are counted as
warnings.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from core.fees import fee_rate_from_schedule
from core.markets.errors import BadReason, GammaParseError
from core.markets.wire import (
    GammaEventRef,
    GammaMarketItem,
    UnreadableOutcomePrices,
    as_json,
    decode_event,
    decode_market,
    flag,
    item_id,
)
from core.money import to_units
from core.types import MarketInfo, TokenInfo

log = logging.getLogger(__name__)

UNKNOWN_FEE_RATE = Decimal("0.07")
"""Assumed taker rate when fees are enabled but no schedule is published (2026's highest: crypto)."""
DEFAULT_TICK = Decimal("0.01")
DEFAULT_MIN_SIZE = Decimal("5")
_MAX_BAD_LOGS_PER_PAGE = 5


@dataclass(frozen=True, slots=True)
class GammaMarket:
    """One decoded Gamma market: the domain view plus what the ``markets`` table also keeps."""

    info: MarketInfo
    gamma_id: str | None
    end_date: datetime | None
    fee_schedule: dict[str, object] | None
    fees_enabled: bool | None
    outcome_prices: tuple[Decimal, ...]
    accepting_orders: bool | None
    event_id: str | None
    event_slug: str | None
    raw: bytes = field(compare=False, repr=False)
    """The item's JSON text as Gamma sent it (the ``raw`` column keeps it verbatim)."""

    @property
    def condition_id(self) -> str:
        return self.info.condition_id


@dataclass(slots=True)
class ParseStats:
    """Counts of one parse run; ``bad`` and ``warnings`` are keyed by reason."""

    seen: int = 0
    parsed: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    def merge(self, other: ParseStats) -> None:
        self.seen += other.seen
        self.parsed += other.parsed
        self.bad.update(other.bad)
        self.warnings.update(other.warnings)


# --------------------------------------------------------------------------- field rules


def _text(value: str | int | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _datetime(value: str | None) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _condition_id(item: GammaMarketItem) -> str:
    condition_id = _text(item.condition_id)
    if condition_id is None:
        raise GammaParseError(BadReason.MISSING_CONDITION_ID, f"market id={item.id!r} has no conditionId")
    return condition_id


def _tokens(item: GammaMarketItem) -> tuple[TokenInfo, ...]:
    if item.clob_token_ids is None:
        raise GammaParseError(BadReason.MISSING_TOKEN_IDS, "clobTokenIds is absent (no order book)")
    token_ids = [t.strip() for t in item.clob_token_ids]
    if not token_ids or not all(t.isdigit() for t in token_ids):
        raise GammaParseError(BadReason.BAD_TOKEN_IDS, f"clobTokenIds {token_ids!r:.160} are not all decimal token ids")
    if len(set(token_ids)) != len(token_ids):
        raise GammaParseError(BadReason.BAD_TOKEN_IDS, "clobTokenIds contains duplicates")
    if item.outcomes is None:
        raise GammaParseError(BadReason.BAD_OUTCOMES, "outcomes is absent")
    outcomes = [o.strip() for o in item.outcomes]
    if not all(outcomes):
        raise GammaParseError(BadReason.BAD_OUTCOMES, f"outcomes {list(item.outcomes)!r} has an empty name")
    if len(outcomes) != len(token_ids):
        raise GammaParseError(BadReason.LENGTH_MISMATCH, f"{len(outcomes)} outcomes but {len(token_ids)} clobTokenIds")
    return tuple(TokenInfo(token_id=t, outcome=o) for t, o in zip(token_ids, outcomes, strict=True))


def _outcome_prices(item: GammaMarketItem, outcomes: int, warn: Counter[str]) -> tuple[Decimal, ...]:
    prices = item.outcome_prices
    if prices is None:
        return ()
    if isinstance(prices, UnreadableOutcomePrices) or not all(p.is_finite() for p in prices):
        warn["bad_outcome_prices"] += 1  # informational field: the market stays usable
        return ()
    if prices and len(prices) != outcomes:
        warn["outcome_prices_length_mismatch"] += 1
        return ()
    return tuple(prices)


def _exact_units(value: Decimal, name: str) -> Decimal:
    """``value`` when it is a finite number exact in the money unit (10^-6), else a bad item."""
    if not value.is_finite():
        raise GammaParseError(BadReason.BAD_NUMBER, f"{name}={value} is not finite")
    try:
        to_units(value)
    except ValueError:
        raise GammaParseError(BadReason.BAD_NUMBER, f"{name}={value} is finer than the 10^-6 money unit") from None
    return value


def _tick(item: GammaMarketItem, warn: Counter[str]) -> Decimal:
    if item.order_price_min_tick_size is None:
        warn["default_tick_size"] += 1
        return DEFAULT_TICK
    tick = _exact_units(item.order_price_min_tick_size, "orderPriceMinTickSize")
    if not Decimal(0) < tick < Decimal(1):
        raise GammaParseError(BadReason.BAD_NUMBER, f"orderPriceMinTickSize={tick} outside (0, 1)")
    return tick


def _min_size(item: GammaMarketItem, warn: Counter[str]) -> Decimal:
    if item.order_min_size is None:
        warn["default_min_size"] += 1
        return DEFAULT_MIN_SIZE
    min_size = _exact_units(item.order_min_size, "orderMinSize")
    if min_size < 0:
        raise GammaParseError(BadReason.BAD_NUMBER, f"orderMinSize={min_size} is negative")
    return min_size


def _fee_rate(item: GammaMarketItem, warn: Counter[str]) -> Decimal:
    try:
        # the schedule wins even when feesEnabled says false: overstating a fee is the safe error
        rate = fee_rate_from_schedule(item.fee_schedule)
    except ValueError as exc:
        raise GammaParseError(BadReason.BAD_NUMBER, str(exc)) from None
    if flag(item.fees_enabled) and item.fee_schedule is None:
        # Gamma says fees apply but publishes no schedule (early-2026 crypto markets): the rate is
        # unknown here. Understating a fee turns a loss into a phantom edge, so assume the highest
        # published taker rate until CLOB /fee-rate (the authority) says otherwise; count it.
        warn["fees_enabled_without_schedule"] += 1
        return UNKNOWN_FEE_RATE
    return rate


@dataclass(frozen=True, slots=True)
class _NegRisk:
    neg_risk: bool
    market_id: str | None
    augmented: bool


def _neg_risk(item: GammaMarketItem, ev: GammaEventRef | None, warn: Counter[str]) -> _NegRisk:
    """The market's neg-risk group: its own flags first, else its event's."""
    neg_risk = bool(flag(item.neg_risk, False)) or bool(ev is not None and flag(ev.neg_risk, False))
    market_id = _text(item.neg_risk_market_id) or (_text(ev.neg_risk_market_id) if ev is not None else None)
    if neg_risk and market_id is None:
        warn["neg_risk_without_group_id"] += 1
    # negRiskAugmented lives on the event in real captures; a market-level flag wins when present.
    augmented = flag(item.neg_risk_augmented)
    if augmented is None and ev is not None:
        augmented = flag(ev.neg_risk_augmented)
    return _NegRisk(neg_risk, market_id, bool(augmented))


# --------------------------------------------------------------------------- items


def translate_market(
    item: GammaMarketItem, raw: bytes, *, event: GammaEventRef | None = None, warn: Counter[str] | None = None
) -> GammaMarket:
    """One decoded item as a :class:`GammaMarket` (``event``: the event it was listed under).

    Raises :class:`GammaParseError` for an item that cannot be traded on; recoverable oddities
    are counted in ``warn``.
    """
    warn = warn if warn is not None else Counter()
    condition_id = _condition_id(item)
    tokens = _tokens(item)
    ev = event if event is not None else item.first_event
    group = _neg_risk(item, ev, warn)
    info = MarketInfo(
        condition_id=condition_id,
        question=_text(item.question) or "",
        slug=_text(item.slug) or "",
        tokens=tokens,
        tick_size=_tick(item, warn),
        min_order_size=_min_size(item, warn),
        neg_risk=group.neg_risk,
        neg_risk_market_id=group.market_id,
        neg_risk_augmented=group.augmented,
        fee_rate=_fee_rate(item, warn),
        active=bool(flag(item.active, True)),
        closed=bool(flag(item.closed, False)),
    )
    return GammaMarket(
        info=info,
        gamma_id=_text(item.id),
        end_date=_datetime(item.end_date),
        fee_schedule=item.fee_schedule,
        fees_enabled=flag(item.fees_enabled),
        outcome_prices=_outcome_prices(item, len(tokens), warn),
        accepting_orders=flag(item.accepting_orders),
        event_id=_text(ev.id) if ev is not None else None,
        event_slug=_text(ev.slug) if ev is not None else None,
        raw=raw,
    )


def _event_ref(event: GammaEventRef | Mapping[str, object] | None) -> GammaEventRef | None:
    if event is None or isinstance(event, GammaEventRef):
        return event
    return decode_event(as_json({"markets": [], **event}))


def parse_market(
    item: object, *, event: GammaEventRef | Mapping[str, object] | None = None, stats: ParseStats | None = None
) -> GammaMarket:
    """Decode and translate one Gamma item: its JSON text, or an object read from a file.

    Raises :class:`GammaParseError` for an item that cannot be traded on (counted as bad by
    :func:`parse_markets`); recoverable oddities are counted in ``stats.warnings``.
    """
    raw = as_json(item)
    warn = stats.warnings if stats is not None else None
    return translate_market(decode_market(raw), raw, event=_event_ref(event), warn=warn)


def _log_bad(item: object, exc: GammaParseError) -> None:
    if isinstance(item, Mapping):
        ident: object = item.get("id")
    elif isinstance(item, bytes | msgspec.Raw):
        ident = item_id(bytes(item))
    else:
        ident = None
    log.warning("gamma: skipped market id=%s: %s", ident, exc)


def parse_markets(
    items: Iterable[object],
    *,
    event: GammaEventRef | Mapping[str, object] | None = None,
    stats: ParseStats | None = None,
) -> tuple[list[GammaMarket], ParseStats]:
    """Decode a page of Gamma items; bad ones are counted by reason and logged, never raised."""
    stats = stats if stats is not None else ParseStats()
    ref = _event_ref(event)
    page = ParseStats()
    markets: list[GammaMarket] = []
    for item in items:
        page.seen += 1
        try:
            markets.append(parse_market(item, event=ref, stats=page))
            page.parsed += 1
        except GammaParseError as exc:
            page.bad[exc.reason] += 1
            if page.bad_total <= _MAX_BAD_LOGS_PER_PAGE:
                _log_bad(item, exc)
    if page.bad_total > _MAX_BAD_LOGS_PER_PAGE:
        log.warning(
            "gamma: %d more bad markets on this page: %s", page.bad_total - _MAX_BAD_LOGS_PER_PAGE, dict(page.bad)
        )
    if page.warnings:
        log.debug("gamma: parse warnings %s", dict(page.warnings))
    stats.merge(page)
    return markets, stats


def parse_events(events: Iterable[object], *, stats: ParseStats | None = None) -> tuple[list[GammaMarket], ParseStats]:
    """Decode the markets of Gamma ``/events`` items (each market inherits its event's flags)."""
    stats = stats if stats is not None else ParseStats()
    markets: list[GammaMarket] = []
    for item in events:
        try:
            ev = decode_event(as_json(item))
        except GammaParseError as exc:
            stats.seen += 1
            stats.bad[BadReason.NOT_AN_OBJECT] += 1
            log.warning("gamma: skipped an event without a markets list: %s", exc)
            continue
        found, _ = parse_markets(ev.markets, event=ev, stats=stats)
        markets.extend(found)
    return markets, stats
