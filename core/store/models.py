"""SQLAlchemy 2 models: the whole schema (Alembic's revisions, applied in order, create exactly this).

Conventions:
- money, prices and sizes are :class:`~core.store.columns.Money` (exact ``Decimal``, scale 6);
- wall-clock timestamps are :class:`~core.store.columns.UTCDateTime` (aware UTC);
- feed timestamps stay integers as the feed gives them: ``exchange_ts`` is the venue's
  millisecond epoch, ``receive_ts`` is our nanosecond epoch (``time.time_ns()``) at receipt;
- JSON columns hold plain JSON (decimals as strings).

Feed tables (book_snapshots, book_deltas, trades) have no foreign key to markets on purpose:
the feed may see an asset before the market refresh has stored it.
On PostgreSQL they are partitioned by day on ``receive_ts`` (migration 0005, core.store.partitions)
and their primary key there is ``(id, receive_ts)``; the models keep ``id`` alone, which SQLite needs
for its rowid (ids come from one sequence on PostgreSQL, so they stay unique there too).
A row a recorder wrote from the market-data bus carries its message's key (``bus_epoch``,
``bus_seq``, and for a delta level ``bus_idx``; NULL for rows a single process wrote): the partial
unique index ``uq_<table>_bus`` (migration 0006) refuses a second copy of it. It includes
``receive_ts`` (PostgreSQL wants the partition column in a unique index), which costs nothing:
a copy of a message carries the same ``receive_ts``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy import text as sa_text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.chain.journal import JOURNAL_STATUSES
from core.store.columns import BigIntPK, JSONDoc, Money, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


ID = str  # identifiers from the venue (hex condition ids, decimal token ids) are kept as text


class Market(Base):
    __tablename__ = "markets"

    condition_id: Mapped[ID] = mapped_column(String(80), primary_key=True)
    question: Mapped[str] = mapped_column(Text, default="")
    slug: Mapped[str] = mapped_column(String(255), default="", index=True)
    event_id: Mapped[str | None] = mapped_column(String(80))
    neg_risk_market_id: Mapped[str | None] = mapped_column(String(80), index=True)
    neg_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    neg_risk_augmented: Mapped[bool] = mapped_column(Boolean, default=False)
    tick_size: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.01"))
    min_order_size: Mapped[Decimal] = mapped_column(Money(), default=Decimal("5"))
    fee_rate: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))
    fee_schedule: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    tokens: Mapped[list[Token]] = relationship(
        back_populates="market", lazy="selectin", cascade="all, delete-orphan", order_by="Token.outcome_index"
    )


class Token(Base):
    __tablename__ = "tokens"

    token_id: Mapped[ID] = mapped_column(String(100), primary_key=True)
    condition_id: Mapped[ID] = mapped_column(
        String(80), ForeignKey("markets.condition_id", ondelete="CASCADE"), index=True
    )
    outcome: Mapped[str] = mapped_column(String(255))
    outcome_index: Mapped[int] = mapped_column(Integer, default=0)

    market: Mapped[Market] = relationship(back_populates="tokens", lazy="raise")


def _bus_key(table: str, *columns: str) -> Index:
    """The unique key of a row recorded from the bus (rows without ``bus_seq`` are not in it)."""
    where = sa_text("bus_seq IS NOT NULL")
    return Index(f"uq_{table}_bus", *columns, unique=True, postgresql_where=where, sqlite_where=where)


BUS_KEY = ("asset_id", "bus_epoch", "bus_seq", "receive_ts")


class BookSnapshot(Base):
    """A full ``book`` message. ``bids``/``asks``: lists of ``[price, size]`` decimal strings."""

    __tablename__ = "book_snapshots"
    __table_args__ = (Index(None, "asset_id", "id"), Index(None, "receive_ts"), _bus_key(__tablename__, *BUS_KEY))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    asset_id: Mapped[ID] = mapped_column(String(100))
    market: Mapped[ID] = mapped_column(String(80), default="")
    bids: Mapped[list[Any]] = mapped_column(JSONDoc)
    asks: Mapped[list[Any]] = mapped_column(JSONDoc)
    tick_size: Mapped[Decimal | None] = mapped_column(Money())
    hash: Mapped[str | None] = mapped_column(String(100))
    exchange_ts: Mapped[int | None] = mapped_column(BigInteger)  # venue ms epoch
    receive_ts: Mapped[int] = mapped_column(BigInteger)  # our ns epoch
    bus_epoch: Mapped[int | None] = mapped_column(BigInteger)  # the bus message's epoch and seq
    bus_seq: Mapped[int | None] = mapped_column(BigInteger)


class BookDelta(Base):
    """One level update (absolute size; 0 removes). ``side`` BUY = bid, SELL = ask."""

    __tablename__ = "book_deltas"
    __table_args__ = (
        # PostgreSQL only: SQLite's per-asset index is book_deltas_by_asset, below (migration 0007)
        Index(None, "asset_id", "id").ddl_if(dialect="postgresql"),
        Index(None, "receive_ts"),
        _bus_key(__tablename__, "asset_id", "bus_epoch", "bus_seq", "bus_idx", "receive_ts"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    asset_id: Mapped[ID] = mapped_column(String(100))
    market: Mapped[ID] = mapped_column(String(80), default="")
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(Money())
    size: Mapped[Decimal] = mapped_column(Money())
    best_bid: Mapped[Decimal | None] = mapped_column(Money())
    best_ask: Mapped[Decimal | None] = mapped_column(Money())
    hash: Mapped[str | None] = mapped_column(String(100))
    exchange_ts: Mapped[int | None] = mapped_column(BigInteger)
    receive_ts: Mapped[int] = mapped_column(BigInteger)
    bus_epoch: Mapped[int | None] = mapped_column(BigInteger)
    bus_seq: Mapped[int | None] = mapped_column(BigInteger)
    bus_idx: Mapped[int | None] = mapped_column(Integer)  # the level's place in its delta message


class Trade(Base):
    """A ``last_trade_price`` event (the market's trades, not ours: those are fills)."""

    __tablename__ = "trades"
    __table_args__ = (Index(None, "asset_id", "id"), Index(None, "receive_ts"), _bus_key(__tablename__, *BUS_KEY))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    asset_id: Mapped[ID] = mapped_column(String(100))
    market: Mapped[ID] = mapped_column(String(80), default="")
    price: Mapped[Decimal] = mapped_column(Money())
    size: Mapped[Decimal] = mapped_column(Money())
    side: Mapped[str | None] = mapped_column(String(4))
    fee_rate_bps: Mapped[int | None] = mapped_column(Integer)
    transaction_hash: Mapped[str | None] = mapped_column(String(100))
    exchange_ts: Mapped[int | None] = mapped_column(BigInteger)
    receive_ts: Mapped[int] = mapped_column(BigInteger)
    bus_epoch: Mapped[int | None] = mapped_column(BigInteger)
    bus_seq: Mapped[int | None] = mapped_column(BigInteger)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(100), unique=True)
    venue_order_id: Mapped[str | None] = mapped_column(String(100), index=True)
    order_hash: Mapped[str | None] = mapped_column(String(100))
    market: Mapped[ID] = mapped_column(String(80))
    token_id: Mapped[ID] = mapped_column(String(100), index=True)
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(Money())
    size: Mapped[Decimal] = mapped_column(Money())
    order_type: Mapped[str] = mapped_column(String(8), default="GTC")
    post_only: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32), index=True)
    mode: Mapped[str] = mapped_column(String(8))  # paper | dry-run | live
    group_id: Mapped[str | None] = mapped_column(String(100), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    signed_order: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    error: Mapped[str | None] = mapped_column(Text)
    filled_size: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))
    avg_price: Mapped[Decimal | None] = mapped_column(Money())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Fill(Base):
    """One execution of one of our orders; ``status`` moves matched -> confirmed (or failed).

    ``(client_order_id, trade_id)`` is unique: a trade reported twice (reconnect, reconciliation)
    updates the row instead of adding a second one. Paper fills carry their own trade ids.
    """

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("client_order_id", "trade_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(100), index=True)
    venue_order_id: Mapped[str | None] = mapped_column(String(100))
    trade_id: Mapped[str] = mapped_column(String(100))
    token_id: Mapped[ID] = mapped_column(String(100), index=True)
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(Money())
    size: Mapped[Decimal] = mapped_column(Money())
    fee: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))
    status: Mapped[str] = mapped_column(String(16), default="confirmed")  # matched | confirmed | failed
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Position(Base):
    __tablename__ = "positions"

    token_id: Mapped[ID] = mapped_column(String(100), primary_key=True)
    market: Mapped[ID] = mapped_column(String(80), default="")
    size: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))
    avg_cost: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))
    realised_pnl: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ExecAudit(Base):
    """Every relayer attempt (place, cancel, cancel_all, reconcile), whatever its outcome."""

    __tablename__ = "exec_audit"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    client_order_id: Mapped[str | None] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(16))  # place | cancel | cancel_all | reconcile
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    request: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)  # summary, never secrets
    outcome: Mapped[str] = mapped_column(String(16))
    error_class: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)  # a duration, not money
    mode: Mapped[str] = mapped_column(String(8))


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index(None, "kind", "key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    key: Mapped[str] = mapped_column(String(255), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CommandAudit(Base):
    """Every command from a front end: who, what, and what came of it."""

    __tablename__ = "command_audit"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    front_end: Mapped[str] = mapped_column(String(16))  # cli | telegram
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    command: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[Any] = mapped_column(JSONDoc, nullable=True)
    result: Mapped[str] = mapped_column(String(16))  # ok | refused | error ...
    detail: Mapped[str] = mapped_column(Text, default="")


class State(Base):
    """Small key/value state that must survive a restart (``armed`` and similar)."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONDoc, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


CONTROL_ACTIONS: tuple[str, ...] = ("disarm", "kill", "merge", "redeem", "balance")
CONTROL_STATUSES: tuple[str, ...] = ("pending", "claimed", "done", "expired")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ControlRequest(Base):
    """A ``polybot disarm`` / ``polybot kill`` request and what became of it (the audit trail).

    ``status`` moves pending -> claimed -> done, or pending -> expired; each move is one
    conditional UPDATE on ``status`` (core.control.requests), so a request runs at most once,
    in one service, and never after it expired. ``created``/``expires``/``handled_at`` are the
    database's clock (see core.control.requests.db_now).
    """

    __tablename__ = "control_requests"
    __table_args__ = (
        Index(None, "status", "expires"),
        CheckConstraint(_one_of("action", CONTROL_ACTIONS), name="action"),
        CheckConstraint(_one_of("status", CONTROL_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(16))  # disarm | kill | merge | redeem | balance
    requested_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime())
    expires: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | claimed | done | expired
    handled_by: Mapped[str | None] = mapped_column(String(100))  # service instance, or the CLI that expired it
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ok: Mapped[bool | None] = mapped_column(Boolean)
    result: Mapped[str | None] = mapped_column(Text)


class ChainTx(Base):
    """One signed on-chain transaction, journaled before it is broadcast (core.chain.journal)."""

    __tablename__ = "chain_txs"
    __table_args__ = (
        Index(None, "status"),
        Index(None, "sender", "nonce"),
        Index(None, "purpose", "ref"),
        CheckConstraint(_one_of("status", JOURNAL_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    purpose: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(100))
    sender: Mapped[str] = mapped_column(String(42))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    raw_tx: Mapped[str] = mapped_column(Text)  # the signed bytes, 0x-hex, exactly as broadcast
    to_address: Mapped[str] = mapped_column(String(42))
    function: Mapped[str] = mapped_column(String(200))
    args: Mapped[Any] = mapped_column(JSONDoc, nullable=True)  # [[name, value], ...]
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    max_priority_fee_per_gas: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # core.chain.journal.JournalStatus
    replaces: Mapped[str | None] = mapped_column(String(66))  # the hash this one replaced (same nonce)
    error: Mapped[str | None] = mapped_column(Text)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    block_number: Mapped[int | None] = mapped_column(BigInteger)


TABLES: tuple[str, ...] = tuple(Base.metadata.tables)
FEED_TABLES: tuple[str, ...] = ("book_snapshots", "book_deltas", "trades")
ARMED_KEY = "armed"


# -- SQLite only: the per-asset index of book_deltas (migration 0007, core.store.delta_index) -----
# On SQLite an (asset_id, id) index on book_deltas costs ~1 page write per row at the venue's 20,000
# assets (each row lands on its own asset's page): most of the writer's CPU. There the index is a
# table of (asset_key, id) pairs instead, filled by the writer in sorted batches (many rows per page
# per batch), one slice of the assets at a time; rows not yet in it are the newest, found by id
# above their slice's mark, and readers read both.
SQLITE_ONLY = MetaData(naming_convention=NAMING_CONVENTION)
"""Tables only SQLite has (not in :data:`TABLES`: not feed tables, not counted, not on PostgreSQL)."""

DELTA_INDEX_SLICES = 10
"""Slices of the assets indexed in turn: an asset's slice is the code of its id's last character
modulo this (see core.store.delta_index.slice_of). ``book_deltas_indexed`` has one row per slice."""

DELTA_ASSETS = Table(
    "book_delta_assets",
    SQLITE_ONLY,
    Column("asset_key", Integer, primary_key=True),  # the rowid: a small integer per asset
    Column("asset_id", String(100), nullable=False, unique=True),
)
DELTAS_BY_ASSET = Table(
    "book_deltas_by_asset",
    SQLITE_ONLY,
    Column("asset_key", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, primary_key=True, autoincrement=False),  # book_deltas.id
    sqlite_with_rowid=False,
)
DELTAS_INDEXED = Table(
    "book_deltas_indexed",
    SQLITE_ONLY,
    Column("slice", Integer, primary_key=True, autoincrement=False),
    Column("upto", Integer, nullable=False),  # every row of the slice with an id up to this is indexed
)


def deltas_slice_sql(column: str = "asset_id") -> str:
    """An asset's slice, in SQL, of the asset id in ``column`` (the expression of the index below:
    queries must spell it the same, the column qualified as they name it)."""
    return f"coalesce(unicode(substr({column}, -1)), 0) % {DELTA_INDEX_SLICES}"


DELTAS_SLICE_SQL = deltas_slice_sql()
DELTAS_SLICE_INDEX = f"CREATE INDEX IF NOT EXISTS ix_book_deltas_slice_id ON book_deltas ({DELTAS_SLICE_SQL}, id)"
"""Each slice's newest rows by id: ten append points, cheap to fill (the indexer and readers use it)."""
DELTAS_INDEX_TRIGGERS = (
    # a deleted row leaves the index with it (retention, or anyone's DELETE)
    "CREATE TRIGGER IF NOT EXISTS book_deltas_by_asset_delete AFTER DELETE ON book_deltas BEGIN "
    "DELETE FROM book_deltas_by_asset WHERE id = OLD.id AND asset_key = "
    "(SELECT asset_key FROM book_delta_assets WHERE asset_id = OLD.asset_id); END",
    # the newest row deleted: its id will be given again, so no mark may stay above the highest id
    "CREATE TRIGGER IF NOT EXISTS book_deltas_indexed_newest AFTER DELETE ON book_deltas "
    "WHEN OLD.id > (SELECT coalesce(max(id), 0) FROM book_deltas) BEGIN "
    "UPDATE book_deltas_indexed SET upto = (SELECT coalesce(max(id), 0) FROM book_deltas) "
    "WHERE upto > (SELECT coalesce(max(id), 0) FROM book_deltas); END",
)


@event.listens_for(Base.metadata, "after_create")
def _create_sqlite_only(_target: MetaData, connection: Connection, **_kw: Any) -> None:
    """``create_all`` on SQLite makes what migrations make there (the in-memory databases of replays)."""
    if connection.dialect.name == "sqlite":
        SQLITE_ONLY.create_all(connection)
        marks = ", ".join(f"({k}, 0)" for k in range(DELTA_INDEX_SLICES))
        connection.exec_driver_sql(f"INSERT OR IGNORE INTO book_deltas_indexed (slice, upto) VALUES {marks}")
        for ddl in (DELTAS_SLICE_INDEX, *DELTAS_INDEX_TRIGGERS):
            connection.exec_driver_sql(ddl)
