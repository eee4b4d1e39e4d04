"""Stored markets, read back: list and filter, resolve what a user typed, find a token's market."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Select, func, or_, select

from core.markets.errors import MarketLookupError
from core.markets.repository import SessionSource, sessions_of
from core.store.models import Market, Token
from core.types import MarketInfo, TokenInfo

_MIN_PREFIX = 4
_MAX_CANDIDATES_SHOWN = 5


def plain_decimal(value: Decimal) -> Decimal:
    """Stored decimals come back at scale 6 (0.010000): show them as written (0.01)."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    return normalized.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normalized


def market_info_from_row(row: Market) -> MarketInfo:
    return MarketInfo(
        condition_id=row.condition_id,
        question=row.question,
        slug=row.slug,
        tokens=tuple(
            TokenInfo(token_id=t.token_id, outcome=t.outcome) for t in sorted(row.tokens, key=lambda t: t.outcome_index)
        ),
        tick_size=plain_decimal(row.tick_size),
        min_order_size=plain_decimal(row.min_order_size),
        neg_risk=row.neg_risk,
        neg_risk_market_id=row.neg_risk_market_id,
        neg_risk_augmented=row.neg_risk_augmented,
        fee_rate=plain_decimal(row.fee_rate),
        active=row.active,
        closed=row.closed,
    )


@dataclass(frozen=True, slots=True)
class StoredMarket:
    """A market as listed from the database: the domain view plus bookkeeping columns.

    Its JSON form is the control layer's (:meth:`core.control.types.ListedMarket.as_dict`)."""

    info: MarketInfo
    end_date: datetime | None
    event_id: str | None
    fee_schedule: dict[str, object] | None
    updated_at: datetime | None


def _text_filter(text: str) -> ColumnElement[bool]:
    return or_(
        Market.slug.icontains(text, autoescape=True),
        Market.question.icontains(text, autoescape=True),
        func.lower(Market.condition_id) == text.lower(),
        func.lower(Market.neg_risk_market_id) == text.lower(),
        Market.event_id == text,
    )


def _filtered(
    text: str | None,
    active: bool | None,
    closed: bool | None,
    neg_risk_market_id: str | None,
    condition_ids: Sequence[str] | None,
) -> Select[Market]:
    stmt = select(Market)
    if text and text.strip():
        stmt = stmt.where(_text_filter(text.strip()))
    if active is not None:
        stmt = stmt.where(Market.active.is_(active))
    if closed is not None:
        stmt = stmt.where(Market.closed.is_(closed))
    if neg_risk_market_id is not None:
        stmt = stmt.where(func.lower(Market.neg_risk_market_id) == neg_risk_market_id.lower())
    if condition_ids is not None:
        stmt = stmt.where(Market.condition_id.in_(list(condition_ids)))
    return stmt.order_by(Market.neg_risk_market_id.is_(None), Market.neg_risk_market_id, Market.slug)


async def list_markets(
    target: SessionSource,
    text: str | None = None,
    *,
    active: bool | None = None,
    closed: bool | None = None,
    neg_risk_market_id: str | None = None,
    condition_ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[StoredMarket]:
    """Stored markets matching a text filter (slug/question substring, condition/group/event id)."""
    stmt = _filtered(text, active, closed, neg_risk_market_id, condition_ids)
    if limit is not None:
        stmt = stmt.limit(limit)
    async with sessions_of(target)() as session:
        rows = (await session.scalars(stmt)).all()
        return [
            StoredMarket(
                info=market_info_from_row(r),
                end_date=r.end_date,
                event_id=r.event_id,
                fee_schedule=r.fee_schedule,
                updated_at=r.updated_at,
            )
            for r in rows
        ]


async def load_markets(
    target: SessionSource,
    text: str | None = None,
    *,
    active: bool | None = None,
    closed: bool | None = None,
    neg_risk_market_id: str | None = None,
    condition_ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[MarketInfo]:
    """Stored markets as :class:`MarketInfo` (same filters as :func:`list_markets`)."""
    rows = await list_markets(
        target,
        text,
        active=active,
        closed=closed,
        neg_risk_market_id=neg_risk_market_id,
        condition_ids=condition_ids,
        limit=limit,
    )
    return [r.info for r in rows]


def _prefix_match(ref: str) -> Select[Market]:
    like = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return (
        select(Market)
        .where(
            or_(Market.slug.like(like, escape="\\"), func.lower(Market.condition_id).like(like.lower(), escape="\\"))
        )
        .order_by(Market.slug)
        .limit(_MAX_CANDIDATES_SHOWN + 1)
    )


async def resolve_market(target: SessionSource, ref: str) -> MarketInfo:
    """The stored market a user means by ``ref``: a condition id or a slug.

    Exact matches win (condition id case-insensitively, then slug); otherwise a unique prefix
    of a slug or condition id (at least 4 characters) is accepted. Unknown or ambiguous
    references raise :class:`MarketLookupError` naming the candidates.
    """
    want = (ref or "").strip()
    if not want:
        raise MarketLookupError("empty market reference: give a condition id (0x...) or a slug")
    exact = (Market.condition_id == want, func.lower(Market.condition_id) == want.lower(), Market.slug == want)
    async with sessions_of(target)() as session:
        # the primary key first (cheap), then case-insensitively, then the slug
        for cond in exact:
            rows = (await session.scalars(select(Market).where(cond).limit(2))).all()
            if len(rows) > 1:  # slugs are not unique in the table; Gamma's are, but be explicit
                raise MarketLookupError(
                    f"market {want!r} is ambiguous: several markets have that slug; use a condition id"
                )
            if rows:
                return market_info_from_row(rows[0])
        rows = (await session.scalars(_prefix_match(want))).all() if len(want) >= _MIN_PREFIX else []
    if len(rows) == 1:
        return market_info_from_row(rows[0])
    if rows:
        shown = ", ".join(r.slug or r.condition_id for r in rows[:_MAX_CANDIDATES_SHOWN])
        more = " ..." if len(rows) > _MAX_CANDIDATES_SHOWN else ""
        raise MarketLookupError(f"market {want!r} is ambiguous: matches {shown}{more}")
    raise MarketLookupError(
        f"unknown market {want!r}: no stored market has that condition id or slug (run polybot refresh-markets first?)"
    )


async def market_for_token(target: SessionSource, token_id: str) -> MarketInfo | None:
    """The stored market one of whose outcome tokens is ``token_id`` (None when unknown)."""
    async with sessions_of(target)() as session:
        cid = await session.scalar(select(Token.condition_id).where(Token.token_id == token_id.strip()))
        if cid is None:
            return None
        row = await session.get(Market, cid)
        return market_info_from_row(row) if row is not None else None
