"""Initial schema: every table and index.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Storage types are spelt out here (not imported from the models) so this revision keeps
meaning the same thing when the models change:
- money: NUMERIC(20, 6) on PostgreSQL, an integer count of 10^-6 units on SQLite
  (core.store.columns.Money converts);
- timestamps: TIMESTAMP WITH TIME ZONE (UTC; SQLite stores UTC wall time);
- JSON: JSONB on PostgreSQL;
- surrogate ids: BIGINT identity on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(20, 6).with_variant(sa.BigInteger(), "sqlite")
TS = sa.DateTime(timezone=True)
JSONDOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

TABLES = (
    "tokens",
    "markets",
    "trades",
    "state",
    "positions",
    "orders",
    "fills",
    "exec_audit",
    "command_audit",
    "book_snapshots",
    "book_deltas",
    "alerts",
)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_kind_key"), "alerts", ["kind", "key"], unique=False)
    op.create_index(op.f("ix_alerts_ts"), "alerts", ["ts"], unique=False)

    op.create_table(
        "book_deltas",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.String(length=100), nullable=False),
        sa.Column("market", sa.String(length=80), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("size", MONEY, nullable=False),
        sa.Column("best_bid", MONEY, nullable=True),
        sa.Column("best_ask", MONEY, nullable=True),
        sa.Column("hash", sa.String(length=100), nullable=True),
        sa.Column("exchange_ts", sa.BigInteger(), nullable=True),
        sa.Column("receive_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_deltas")),
    )
    op.create_index(op.f("ix_book_deltas_asset_id_id"), "book_deltas", ["asset_id", "id"], unique=False)

    op.create_table(
        "book_snapshots",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.String(length=100), nullable=False),
        sa.Column("market", sa.String(length=80), nullable=False),
        sa.Column("bids", JSONDOC, nullable=False),
        sa.Column("asks", JSONDOC, nullable=False),
        sa.Column("tick_size", MONEY, nullable=True),
        sa.Column("hash", sa.String(length=100), nullable=True),
        sa.Column("exchange_ts", sa.BigInteger(), nullable=True),
        sa.Column("receive_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_snapshots")),
    )
    op.create_index(op.f("ix_book_snapshots_asset_id_id"), "book_snapshots", ["asset_id", "id"], unique=False)

    op.create_table(
        "command_audit",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("front_end", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("command", sa.String(length=64), nullable=False),
        sa.Column("arguments", JSONDOC, nullable=True),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_command_audit")),
    )
    op.create_index(op.f("ix_command_audit_ts"), "command_audit", ["ts"], unique=False)
    op.create_index(op.f("ix_command_audit_user_id"), "command_audit", ["user_id"], unique=False)

    op.create_table(
        "exec_audit",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("client_order_id", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("request", JSONDOC, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_class", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exec_audit")),
    )
    op.create_index(op.f("ix_exec_audit_client_order_id"), "exec_audit", ["client_order_id"], unique=False)
    op.create_index(op.f("ix_exec_audit_ts"), "exec_audit", ["ts"], unique=False)

    op.create_table(
        "fills",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("client_order_id", sa.String(length=100), nullable=False),
        sa.Column("venue_order_id", sa.String(length=100), nullable=True),
        sa.Column("trade_id", sa.String(length=100), nullable=False),
        sa.Column("token_id", sa.String(length=100), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("size", MONEY, nullable=False),
        sa.Column("fee", MONEY, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("client_order_id", "trade_id", name=op.f("uq_fills_client_order_id_trade_id")),
    )
    op.create_index(op.f("ix_fills_client_order_id"), "fills", ["client_order_id"], unique=False)
    op.create_index(op.f("ix_fills_token_id"), "fills", ["token_id"], unique=False)

    op.create_table(
        "markets",
        sa.Column("condition_id", sa.String(length=80), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=80), nullable=True),
        sa.Column("neg_risk_market_id", sa.String(length=80), nullable=True),
        sa.Column("neg_risk", sa.Boolean(), nullable=False),
        sa.Column("neg_risk_augmented", sa.Boolean(), nullable=False),
        sa.Column("tick_size", MONEY, nullable=False),
        sa.Column("min_order_size", MONEY, nullable=False),
        sa.Column("fee_rate", MONEY, nullable=False),
        sa.Column("fee_schedule", JSONDOC, nullable=True),
        sa.Column("end_date", TS, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("raw", JSONDOC, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("condition_id", name=op.f("pk_markets")),
    )
    op.create_index(op.f("ix_markets_neg_risk_market_id"), "markets", ["neg_risk_market_id"], unique=False)
    op.create_index(op.f("ix_markets_slug"), "markets", ["slug"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("client_order_id", sa.String(length=100), nullable=False),
        sa.Column("venue_order_id", sa.String(length=100), nullable=True),
        sa.Column("order_hash", sa.String(length=100), nullable=True),
        sa.Column("market", sa.String(length=80), nullable=False),
        sa.Column("token_id", sa.String(length=100), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("size", MONEY, nullable=False),
        sa.Column("order_type", sa.String(length=8), nullable=False),
        sa.Column("post_only", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("group_id", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("signed_order", JSONDOC, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("filled_size", MONEY, nullable=False),
        sa.Column("avg_price", MONEY, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
    )
    op.create_index(op.f("ix_orders_group_id"), "orders", ["group_id"], unique=False)
    op.create_index(op.f("ix_orders_status"), "orders", ["status"], unique=False)
    op.create_index(op.f("ix_orders_token_id"), "orders", ["token_id"], unique=False)
    op.create_index(op.f("ix_orders_venue_order_id"), "orders", ["venue_order_id"], unique=False)

    op.create_table(
        "positions",
        sa.Column("token_id", sa.String(length=100), nullable=False),
        sa.Column("market", sa.String(length=80), nullable=False),
        sa.Column("size", MONEY, nullable=False),
        sa.Column("avg_cost", MONEY, nullable=False),
        sa.Column("realised_pnl", MONEY, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_positions")),
    )
    op.create_table(
        "state",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", JSONDOC, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_state")),
    )
    op.create_table(
        "trades",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.String(length=100), nullable=False),
        sa.Column("market", sa.String(length=80), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("size", MONEY, nullable=False),
        sa.Column("side", sa.String(length=4), nullable=True),
        sa.Column("fee_rate_bps", sa.Integer(), nullable=True),
        sa.Column("transaction_hash", sa.String(length=100), nullable=True),
        sa.Column("exchange_ts", sa.BigInteger(), nullable=True),
        sa.Column("receive_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
    )
    op.create_index(op.f("ix_trades_asset_id_id"), "trades", ["asset_id", "id"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(length=100), nullable=False),
        sa.Column("condition_id", sa.String(length=80), nullable=False),
        sa.Column("outcome", sa.String(length=255), nullable=False),
        sa.Column("outcome_index", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["condition_id"], ["markets.condition_id"], name=op.f("fk_tokens_condition_id_markets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_tokens")),
    )
    op.create_index(op.f("ix_tokens_condition_id"), "tokens", ["condition_id"], unique=False)


def downgrade() -> None:
    # dropping a table drops its indexes; tokens first (foreign key to markets)
    for table in TABLES:
        op.drop_table(table)
