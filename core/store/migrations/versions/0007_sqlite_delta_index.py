"""SQLite: book_deltas' per-asset index becomes a table filled in sorted batches.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

SQLite only (PostgreSQL: nothing changes). At the venue's 20,000 assets the ``(asset_id, id)``
index of ``book_deltas`` costs about one page write per row (every row lands on its own asset's
last leaf page) and was ~80% of the writer's CPU (docs/soak.md). It is replaced by
``book_deltas_by_asset``: ``(asset_key, id)`` pairs in a WITHOUT ROWID table, ``asset_key`` a small
integer per asset (``book_delta_assets``), which the batched writer fills in key order, a tenth of
the assets at a time (each tenth every ~100,000 rows), so each page takes many rows at once
(core.store.delta_index). ``book_deltas_indexed`` keeps each slice's mark: its rows above it are
the newest, not yet indexed, found through ``ix_book_deltas_slice_id`` (slice, id: ten append
points); readers read both. Triggers remove a deleted row's entry and keep the
marks at or below the highest id. The existing rows are indexed here, in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLICES = 10  # core.store.models.DELTA_INDEX_SLICES
SLICE_INDEX = (  # core.store.models.DELTAS_SLICE_INDEX
    f"CREATE INDEX IF NOT EXISTS ix_book_deltas_slice_id ON book_deltas "
    f"(coalesce(unicode(substr(asset_id, -1)), 0) % {SLICES}, id)"
)
TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS book_deltas_by_asset_delete AFTER DELETE ON book_deltas BEGIN "
    "DELETE FROM book_deltas_by_asset WHERE id = OLD.id AND asset_key = "
    "(SELECT asset_key FROM book_delta_assets WHERE asset_id = OLD.asset_id); END",
    "CREATE TRIGGER IF NOT EXISTS book_deltas_indexed_newest AFTER DELETE ON book_deltas "
    "WHEN OLD.id > (SELECT coalesce(max(id), 0) FROM book_deltas) BEGIN "
    "UPDATE book_deltas_indexed SET upto = (SELECT coalesce(max(id), 0) FROM book_deltas) "
    "WHERE upto > (SELECT coalesce(max(id), 0) FROM book_deltas); END",
)


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    if not _sqlite():
        return
    op.create_table(
        "book_delta_assets",
        sa.Column("asset_key", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("asset_key", name="pk_book_delta_assets"),
        sa.UniqueConstraint("asset_id", name="uq_book_delta_assets_asset_id"),
    )
    op.create_table(
        "book_deltas_by_asset",
        sa.Column("asset_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("asset_key", "id", name="pk_book_deltas_by_asset"),
        sqlite_with_rowid=False,
    )
    op.execute("INSERT INTO book_delta_assets (asset_id) SELECT DISTINCT asset_id FROM book_deltas ORDER BY asset_id")
    op.execute(
        "INSERT INTO book_deltas_by_asset (asset_key, id) SELECT a.asset_key, d.id FROM book_deltas AS d "
        "JOIN book_delta_assets AS a ON a.asset_id = d.asset_id ORDER BY a.asset_key, d.id"
    )
    op.create_table(
        "book_deltas_indexed",
        sa.Column("slice", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("upto", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("slice", name="pk_book_deltas_indexed"),
    )
    marks = ", ".join(f"({k}, (SELECT coalesce(max(id), 0) FROM book_deltas))" for k in range(SLICES))
    op.execute(f"INSERT INTO book_deltas_indexed (slice, upto) VALUES {marks}")
    op.execute(SLICE_INDEX)
    for trigger in TRIGGERS:
        op.execute(trigger)
    op.drop_index("ix_book_deltas_asset_id_id", table_name="book_deltas")


def downgrade() -> None:
    if not _sqlite():
        return
    op.create_index("ix_book_deltas_asset_id_id", "book_deltas", ["asset_id", "id"], unique=False)
    op.execute("DROP INDEX IF EXISTS ix_book_deltas_slice_id")
    op.execute("DROP TRIGGER IF EXISTS book_deltas_indexed_newest")
    op.execute("DROP TRIGGER IF EXISTS book_deltas_by_asset_delete")
    op.drop_table("book_deltas_indexed")
    op.drop_table("book_deltas_by_asset")
    op.drop_table("book_delta_assets")
