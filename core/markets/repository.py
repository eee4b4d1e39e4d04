"""The ``markets`` and ``tokens`` tables: an idempotent upsert of translated markets.

The database's own limits live here, not in the translation: a text longer than its column,
a number its ``Money`` column cannot hold exactly, a NUL character (PostgreSQL refuses it in
text and JSONB; it carries no meaning, so it is dropped and counted). A market that does not
fit is refused on its own, counted by reason and logged; the rest of its page is stored.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import cast

import msgspec
from sqlalchemy import FromClause, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.errors import PolybotError
from core.markets.errors import RefusedReason
from core.markets.translate import GammaMarket
from core.store.columns import Money
from core.store.db import driver_reason, session_factory, writing_sessions
from core.store.models import Market, Token

log = logging.getLogger(__name__)

SessionSource = AsyncEngine | async_sessionmaker[AsyncSession]
"""Where markets are stored: an engine, or the session factory of one."""

_MAX_REFUSAL_LOGS = 5
# Core tables, not the ORM classes: the bulk INSERT of new markets needs no ORM bookkeeping
_MARKETS = cast(Table, Market.__table__)
_TOKENS = cast(Table, Token.__table__)


def sessions_of(source: SessionSource) -> async_sessionmaker[AsyncSession]:
    return session_factory(source) if isinstance(source, AsyncEngine) else source


@dataclass(slots=True)
class UpsertCounts:
    """What an upsert did; ``refused`` and ``warnings`` are keyed by reason."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)

    def add(self, other: UpsertCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.refused.update(other.refused)
        self.warnings.update(other.warnings)


@dataclass(frozen=True, slots=True)
class _Row:
    """One market as its rows will be written: ``values`` are the markets columns."""

    condition_id: str
    values: dict[str, object]
    tokens: tuple[tuple[str, str], ...]  # (token_id, outcome), in outcome order


# --------------------------------------------------------------------------- column limits


def _no_nul(text: str) -> str:
    return text.replace("\x00", "") if "\x00" in text else text


def _strip_nul(value: object) -> object:
    """``value`` with NUL characters removed from every string (the same object when it has none)."""
    if isinstance(value, str):
        return _no_nul(value)
    if isinstance(value, Mapping):
        out = {k: _strip_nul(v) for k, v in value.items()}
        return value if all(out[k] is value[k] for k in value) else out
    if isinstance(value, list):
        items = [_strip_nul(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _row(gm: GammaMarket, warn: Counter[str]) -> _Row:
    info = gm.info
    values: dict[str, object] = {
        "question": info.question,
        "slug": info.slug,
        "event_id": gm.event_id,
        "neg_risk_market_id": info.neg_risk_market_id,
        "neg_risk": info.neg_risk,
        "neg_risk_augmented": info.neg_risk_augmented,
        "tick_size": info.tick_size,
        "min_order_size": info.min_order_size,
        "fee_rate": info.fee_rate,
        "fee_schedule": gm.fee_schedule,
        "end_date": gm.end_date,
        "active": info.active,
        "closed": info.closed,
        "raw": msgspec.json.decode(gm.raw),
    }
    texts = [info.condition_id, *(s for t in info.tokens for s in (t.token_id, t.outcome))]
    clean_texts = [_no_nul(s) for s in texts]
    # JSON can carry a NUL only as the escape \u0000: without it the decoded item has none, and
    # walking the whole item for one cost a fifth of a full scan's time
    raw_clean = b"\\u0000" not in gm.raw
    clean_values = {k: v if k == "raw" and raw_clean else _strip_nul(v) for k, v in values.items()}
    if clean_texts != texts or any(clean_values[k] is not values[k] for k in values):
        warn["nul_characters_stripped"] += 1
    cid, *pairs = clean_texts
    return _Row(cid, clean_values, tuple(zip(pairs[::2], pairs[1::2], strict=True)))


def _misfit(table: FromClause, values: Mapping[str, object]) -> tuple[RefusedReason, str] | None:
    """Why ``values`` do not fit ``table``'s columns (None when they do)."""
    for name, value in values.items():
        kind = table.c[name].type
        if isinstance(kind, String) and kind.length is not None and isinstance(value, str) and len(value) > kind.length:
            return RefusedReason.FIELD_TOO_LONG, f"{name} longer than {kind.length} characters"
        if isinstance(kind, Money) and isinstance(value, Decimal):
            try:
                kind.to_units(value)
            except ValueError as exc:
                return RefusedReason.NUMBER_DOES_NOT_FIT, f"{name}: {exc}"
    return None


def _row_misfit(row: _Row) -> tuple[RefusedReason, str] | None:
    found = _misfit(Market.__table__, {"condition_id": row.condition_id, **row.values})
    for token_id, outcome in row.tokens:
        found = found or _misfit(Token.__table__, {"token_id": token_id, "outcome": outcome})
    return found


def _fitting_rows(markets: Sequence[GammaMarket], counts: UpsertCounts) -> list[_Row]:
    """The markets as rows, last listing of a condition id first; those that do not fit are counted."""
    by_id: dict[str, GammaMarket] = {}
    for gm in markets:  # a market listed twice on a page: the later item wins
        by_id[gm.condition_id] = gm
    rows: list[_Row] = []
    for gm in by_id.values():
        row = _row(gm, counts.warnings)
        misfit = _row_misfit(row)
        if misfit is None:
            rows.append(row)
            continue
        reason, detail = misfit
        counts.refused[reason] += 1
        if counts.refused.total() <= _MAX_REFUSAL_LOGS:
            log.warning("gamma: not stored: market %s: %s", gm.condition_id, detail)
    return rows


# --------------------------------------------------------------------------- upsert


async def _insert_new(session: AsyncSession, rows: Sequence[_Row]) -> None:
    """New markets and their tokens as two multi-row INSERTs: building an ORM object per market
    and per token cost most of a full scan's time (25,000 markets, 75,000 objects)."""
    if not rows:
        return
    await session.execute(insert(_MARKETS), [{"condition_id": r.condition_id, **r.values} for r in rows])
    tokens = [
        {"token_id": t, "condition_id": r.condition_id, "outcome": o, "outcome_index": i}
        for r in rows
        for i, (t, o) in enumerate(r.tokens)
    ]
    if tokens:
        await session.execute(insert(_TOKENS), tokens)


def _sync_tokens(market: Market, row: _Row) -> bool:
    """Make ``market.tokens`` match the row's tokens; returns whether anything changed."""
    want = [(t, o, i) for i, (t, o) in enumerate(row.tokens)]
    have = sorted(((t.token_id, t.outcome, t.outcome_index) for t in market.tokens), key=lambda x: x[2])
    if have == want:
        return False
    current = {t.token_id: t for t in market.tokens}
    keep: list[Token] = []
    for token_id, outcome, index in want:
        tok = current.get(token_id)
        if tok is None:
            tok = Token(token_id=token_id, outcome=outcome, outcome_index=index)
        else:
            tok.outcome, tok.outcome_index = outcome, index
        keep.append(tok)
    market.tokens = keep  # tokens no longer listed are deleted (delete-orphan)
    return True


def _update(market: Market, row: _Row) -> bool:
    changed = False
    for name, value in row.values.items():
        if getattr(market, name) != value:
            setattr(market, name, value)
            changed = True
    return _sync_tokens(market, row) or changed


async def _upsert_rows(sessions: async_sessionmaker[AsyncSession], rows: Sequence[_Row]) -> UpsertCounts:
    """Insert new markets, update changed ones, leave equal ones untouched: one transaction."""
    counts = UpsertCounts()
    if not rows:
        return counts
    ids = [r.condition_id for r in rows]
    token_ids = [t for r in rows for t, _ in r.tokens]
    async with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            # The two lookups below run as prepared statements with the same text on every page.
            # After five runs PostgreSQL may keep one generic plan, chosen while the tables were
            # nearly empty: a sequential scan, whose cost then grows with every page stored (a
            # 25,000-market scan: 200 ms per page at the end, 37 s in all instead of 8 s).
            await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        existing = {
            m.condition_id: m for m in (await session.scalars(select(Market).where(Market.condition_id.in_(ids))))
        }
        owner_rows = await session.execute(
            select(Token.token_id, Token.condition_id).where(Token.token_id.in_(token_ids))
        )
        owners: dict[str, str] = {token: cid for token, cid in owner_rows}
        new: list[_Row] = []
        for row in rows:
            clash = [t for t, _ in row.tokens if owners.get(t, row.condition_id) != row.condition_id]
            if clash:
                counts.refused[RefusedReason.TOKEN_ID_CONFLICT] += 1
                log.warning(
                    "gamma: skipped market %s: token %s already belongs to market %s",
                    row.condition_id,
                    clash[0],
                    owners[clash[0]],
                )
                continue
            market = existing.get(row.condition_id)
            if market is None:
                new.append(row)
                counts.inserted += 1
            elif _update(market, row):
                counts.updated += 1
            else:
                counts.unchanged += 1
        await _insert_new(session, new)
    return counts


async def _one_by_one(
    sessions: async_sessionmaker[AsyncSession], rows: Sequence[_Row], first: StatementError
) -> UpsertCounts:
    """After the database refused a page: store its markets one by one, so one refusal costs one market."""
    log.warning("gamma refresh: the database refused a page (%s); storing its markets one by one", driver_reason(first))
    total = UpsertCounts()
    for row in rows:
        try:
            total.add(await _upsert_rows(sessions, [row]))
        except StatementError as exc:
            if exc.connection_invalidated:
                raise
            total.refused[RefusedReason.DB_REJECTED] += 1
            log.warning("gamma refresh: database refused market %s: %s", row.condition_id, driver_reason(exc))
    if rows and total.refused[RefusedReason.DB_REJECTED] == len(rows):
        raise PolybotError(f"the database refused every market of a page: {driver_reason(first)}") from first
    return total


async def upsert_markets(target: SessionSource, markets: Sequence[GammaMarket]) -> UpsertCounts:
    """Store translated markets and their tokens; idempotent (equal rows are left untouched).

    A market that does not fit its columns, or whose token ids belong to another market, is
    refused and counted; the others are stored in one transaction.
    """
    sessions = writing_sessions(sessions_of(target))
    counts = UpsertCounts()
    rows = _fitting_rows(markets, counts)
    try:
        stored = await _upsert_rows(sessions, rows)
    except IntegrityError:
        # A concurrent refresh inserted the same market between our SELECT and INSERT; the
        # second attempt sees the row and updates it instead.
        log.info("gamma refresh: concurrent insert detected; retrying the page once")
        stored = await _upsert_rows(sessions, rows)
    except StatementError as exc:  # a driver error, or a value a column type refused
        if exc.connection_invalidated:
            raise
        stored = await _one_by_one(sessions, rows, exc)
    counts.add(stored)
    return counts
