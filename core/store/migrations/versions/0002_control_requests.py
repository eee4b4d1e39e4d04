"""control_requests: CLI disarm/kill requests that run once, in one service, or never.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Until 0001 a ``polybot disarm`` / ``polybot kill`` request lived under one ``state`` key that was
never retired, so every later service start replayed it. This revision gives requests their own
table (the audit trail: every request and what became of it) and deletes the old
``control_request`` / ``control_ack`` state rows, so an old pending request cannot be read (or
run) by anything. Downgrading drops the table; the deleted state rows are not restored.

Storage types are spelt out (as in 0001) so this revision keeps its meaning when models change:
timestamps TIMESTAMP WITH TIME ZONE (UTC; SQLite stores UTC wall time), surrogate ids BIGINT
identity on PostgreSQL and INTEGER PRIMARY KEY (rowid) on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_STATE_KEYS = ("control_request", "control_ack")


def upgrade() -> None:
    op.create_table(
        "control_requests",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("expires", TS, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("handled_by", sa.String(length=100), nullable=True),
        sa.Column("handled_at", TS, nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.CheckConstraint("action IN ('disarm', 'kill')", name=op.f("ck_control_requests_action")),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'done', 'expired')", name=op.f("ck_control_requests_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_requests")),
    )
    op.create_index(op.f("ix_control_requests_status_expires"), "control_requests", ["status", "expires"], unique=False)
    state = sa.table("state", sa.column("key", sa.String(length=100)))
    op.execute(state.delete().where(state.c.key.in_(OLD_STATE_KEYS)))


def downgrade() -> None:
    op.drop_table("control_requests")  # drops its index too
