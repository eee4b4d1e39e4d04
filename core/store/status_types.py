"""The shapes :mod:`core.store.status` reads out of a database: plain JSON-able data.

Kept apart from the queries so that the control facade's result types can name them without
loading SQLAlchemy or Alembic (a face imports them to render, never to query).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class SchemaInfo(TypedDict):
    revision: str | None
    head: str
    at_head: bool
    tables: list[str]


class StateEntry(TypedDict):
    value: object
    updated_at: str


class LastTrade(TypedDict):
    price: str | None
    size: str | None
    side: str | None
    age_s: float


class StoredAsset(TypedDict):
    """One tracked asset: its top of book rebuilt from the latest snapshot and the deltas since."""

    asset_id: str
    market: str
    best_bid: str | None
    best_bid_size: str | None
    best_ask: str | None
    best_ask_size: str | None
    spread: str | None
    crossed: bool
    has_snapshot: bool
    deltas_since_snapshot: int
    last_update_age_s: float | None
    note: NotRequired[str]
    slug: NotRequired[str]
    """Its market's slug (else its condition id), when the markets table knows the token."""
    outcome: NotRequired[str]
    """The token's outcome (Yes, No, a team ...), when the tokens table knows it."""
    closed: NotRequired[bool]
    """Its market is closed/resolved (the book is over, not stale)."""
    bid_levels: NotRequired[int]
    ask_levels: NotRequired[int]
    last_trade: NotRequired[LastTrade]


class StoredStatus(TypedDict):
    """What the database says about the bot (decimals as canonical strings)."""

    db_url: str
    backend: str
    empty: bool
    schema: SchemaInfo
    tables: dict[str, int]
    markets: int
    armed: bool
    assets_tracked: int
    assets: list[StoredAsset]
    note: NotRequired[str]
    state: NotRequired[dict[str, StateEntry]]


class StoredAlert(TypedDict):
    kind: str
    key: str
    severity: str
    message: str
