"""``feed.watch`` rules applied to the stored markets table: which open markets each rule selects.

A market matches a rule when it carries the rule's tag (its own or its event's Gamma tags, by
label or slug, any case), trades at least ``min_volume_24h`` / shows at least ``min_liquidity``
(Gamma's ``volume24hr`` / ``liquidityNum`` as stored with the market), belongs to a neg-risk
event when ``neg_risk_only``, and ends inside the date window. The busiest markets (24 h volume)
come first; a rule adds markets while their tokens fit in its ``max_assets``, and says when
that cap cut it short.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core.markets.queries import market_info_from_row
from core.settings.watch import WatchRule
from core.store.models import Market
from core.types import MarketInfo

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An open stored market with what the rules look at."""

    info: MarketInfo
    end_date: datetime | None = None
    volume_24h: Decimal = ZERO
    liquidity: Decimal = ZERO
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RuleSelection:
    rule: int  # its index in feed.watch
    markets: tuple[MarketInfo, ...]  # selected, within the cap
    matched: int  # markets that matched before the cap

    @property
    def assets(self) -> int:
        return sum(len(m.tokens) for m in self.markets)

    @property
    def capped(self) -> bool:
        return len(self.markets) < self.matched


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return ZERO
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        return ZERO
    return out if out.is_finite() else ZERO


def _tag_names(items: object) -> set[str]:
    names: set[str] = set()
    for tag in items if isinstance(items, list) else []:
        if isinstance(tag, str):
            names.add(tag.strip().lower())
        elif isinstance(tag, Mapping):
            names |= {str(tag[k]).strip().lower() for k in ("label", "slug") if tag.get(k)}
    return names


def candidate_of(info: MarketInfo, end_date: datetime | None, raw: object) -> Candidate:
    """What the rules read from a stored market's Gamma payload (absent figures count as 0)."""
    doc: Mapping[str, object] = raw if isinstance(raw, Mapping) else {}
    tags = _tag_names(doc.get("tags"))
    events = doc.get("events")
    for event in events if isinstance(events, list) else []:
        if isinstance(event, Mapping):
            tags |= _tag_names(event.get("tags"))
    volume = doc.get("volume24hr", doc.get("volume24hrClob"))
    liquidity = doc.get("liquidityNum", doc.get("liquidity"))
    if end_date is not None and end_date.tzinfo is None:
        end_date = end_date.replace(tzinfo=UTC)
    return Candidate(info, end_date, _decimal(volume), _decimal(liquidity), frozenset(tags))


async def stored_candidates(sessions: async_sessionmaker[AsyncSession]) -> list[Candidate]:
    """The stored markets that are active and not closed, as rule candidates."""
    query = (
        select(Market)
        .where(Market.active.is_(True), Market.closed.is_(False))
        .options(selectinload(Market.tokens))
        .order_by(Market.condition_id)
    )
    async with sessions() as session:
        rows = (await session.scalars(query)).all()
        return [candidate_of(market_info_from_row(r), r.end_date, r.raw) for r in rows]


def matches(rule: WatchRule, c: Candidate, now: datetime) -> bool:
    if rule.tag is not None and rule.tag.strip().lower() not in c.tags:
        return False
    if rule.min_volume_24h is not None and c.volume_24h < rule.min_volume_24h:
        return False
    if rule.min_liquidity is not None and c.liquidity < rule.min_liquidity:
        return False
    if rule.neg_risk_only and not (c.info.neg_risk and c.info.neg_risk_market_id):
        return False
    if rule.end_within_days is not None and (
        c.end_date is None or not now <= c.end_date <= now + timedelta(days=rule.end_within_days)
    ):
        return False
    if rule.end_after is not None:
        after = rule.end_after if rule.end_after.tzinfo is not None else rule.end_after.replace(tzinfo=UTC)
        if c.end_date is None or c.end_date <= after:
            return False
    return bool(c.info.tokens) and c.info.active and not c.info.closed


def select_markets(
    rules: Sequence[WatchRule], candidates: Iterable[Candidate], now: datetime | None = None
) -> list[RuleSelection]:
    """Each rule's selection (see the module docstring)."""
    at = now or datetime.now(UTC)
    pool = sorted(candidates, key=lambda c: (-c.volume_24h, c.info.condition_id))
    out: list[RuleSelection] = []
    for index, rule in enumerate(rules):
        hits = [c.info for c in pool if matches(rule, c, at)]
        kept: list[MarketInfo] = []
        room = rule.max_assets
        for market in hits:
            if len(market.tokens) > room:
                break
            kept.append(market)
            room -= len(market.tokens)
        out.append(RuleSelection(index, tuple(kept), len(hits)))
    return out
