"""control_requests may carry merge, redeem and balance (``polybot merge`` / ``redeem`` / ``balance``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

The CLI reaches the running service through ``control_requests`` (it has no socket into it); the
settlement commands are three more actions, their arguments a JSON document in ``reason``. Only the
CHECK constraint on ``action`` changes (SQLite: the table is copied, as Alembic's batch mode does).
Downgrading restores the old constraint; a row with a new action must be deleted first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ck_control_requests_action"
OLD = "action IN ('disarm', 'kill')"
NEW = "action IN ('disarm', 'kill', 'merge', 'redeem', 'balance')"


TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _table(check: str) -> sa.Table:
    """The table as 0002 made it, with ``check`` on action: batch mode copies it without reflecting
    (so ``alembic upgrade --sql`` works offline too)."""
    return sa.Table(
        "control_requests",
        sa.MetaData(),
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
        sa.CheckConstraint(check, name=op.f(NAME)),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'done', 'expired')", name=op.f("ck_control_requests_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_requests")),
        sa.Index(op.f("ix_control_requests_status_expires"), "status", "expires"),
    )


def _replace(old: str, check: str) -> None:
    with op.batch_alter_table("control_requests", copy_from=_table(old)) as batch:
        batch.drop_constraint(op.f(NAME), type_="check")
        batch.create_check_constraint(op.f(NAME), check)


def upgrade() -> None:
    _replace(OLD, NEW)


def downgrade() -> None:
    _replace(NEW, OLD)
