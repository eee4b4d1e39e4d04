"""chain_txs: the journal of signed on-chain transactions (merge, redeem).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Every transaction Polybot signs is written here, with its hash, nonce and raw signed bytes,
before it is broadcast (core.chain.journal); a replacement (same nonce, higher fees) is a row of
its own naming the hash it ``replaces``. At start, the rows not final (signed, sent, stuck) are
looked up on chain by hash. Downgrading drops the table.

Storage types are spelt out (as in 0001) so this revision keeps its meaning when models change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONDOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
STATUSES = ("signed", "sent", "stuck", "confirmed", "reverted", "replaced", "dropped", "failed")


def upgrade() -> None:
    op.create_table(
        "chain_txs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("updated", TS, nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=100), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.Text(), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("function", sa.String(length=200), nullable=False),
        sa.Column("args", JSONDOC, nullable=True),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas", sa.BigInteger(), nullable=False),
        sa.Column("max_priority_fee_per_gas", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replaces", sa.String(length=66), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN (" + ", ".join(repr(s) for s in STATUSES) + ")", name=op.f("ck_chain_txs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_txs")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_chain_txs_tx_hash")),
    )
    op.create_index(op.f("ix_chain_txs_status"), "chain_txs", ["status"], unique=False)
    op.create_index(op.f("ix_chain_txs_sender_nonce"), "chain_txs", ["sender", "nonce"], unique=False)
    op.create_index(op.f("ix_chain_txs_purpose_ref"), "chain_txs", ["purpose", "ref"], unique=False)


def downgrade() -> None:
    op.drop_table("chain_txs")  # drops its indexes too
