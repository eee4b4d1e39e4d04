"""Feed rows recorded from the market-data bus carry their message's key, unique.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

``polybot recorder`` (core.bus.recorder) writes the bus's events into the feed tables and
acknowledges a message only once its rows committed; a message delivered again (the recorder was
killed between commit and acknowledgement, or another recorder sharing the durable consumer got it
after the ack wait) must not be stored twice. Each row therefore gets the key of the message it came
from: ``bus_epoch`` and ``bus_seq`` (per asset, :mod:`core.bus.messages`), and on ``book_deltas``
``bus_idx``, the level's place in its delta message. NULL for rows a single process wrote.

``uq_<table>_bus`` is a partial unique index over ``(asset_id, bus_epoch, bus_seq[, bus_idx],
receive_ts) WHERE bus_seq IS NOT NULL``: rows without a bus key are not in it (the single process's
insert path pays nothing for it). ``receive_ts`` is in it because PostgreSQL wants the partition
column (migration 0005) in every unique index of a partitioned table; it changes nothing, since
every copy of a message carries the same ``receive_ts`` and so lands in the same day partition,
against the same index. On PostgreSQL the index is created on the partitioned table, and so on
every partition (present and future); building it reads each feed table once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS: dict[str, tuple[str, ...]] = {
    "book_snapshots": ("asset_id", "bus_epoch", "bus_seq", "receive_ts"),
    "book_deltas": ("asset_id", "bus_epoch", "bus_seq", "bus_idx", "receive_ts"),
    "trades": ("asset_id", "bus_epoch", "bus_seq", "receive_ts"),
}
WHERE = "bus_seq IS NOT NULL"


def _new_columns(table: str) -> list[sa.Column[int]]:
    cols: list[sa.Column[int]] = [sa.Column("bus_epoch", sa.BigInteger(), nullable=True)]
    cols.append(sa.Column("bus_seq", sa.BigInteger(), nullable=True))
    if table == "book_deltas":
        cols.append(sa.Column("bus_idx", sa.Integer(), nullable=True))
    return cols


def upgrade() -> None:
    where = sa.text(WHERE)
    for table, key in KEYS.items():
        for column in _new_columns(table):
            op.add_column(table, column)
        op.create_index(f"uq_{table}_bus", table, list(key), unique=True, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for table in KEYS:
        op.drop_index(f"uq_{table}_bus", table_name=table)
        for column in reversed(_new_columns(table)):
            op.drop_column(table, column.name)
