"""Feed tables indexed on receive_ts; on PostgreSQL, partitioned by day on it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Retention (core.store.retention) removes feed rows by age, ``receive_ts`` (our ns clock at
receipt): both dialects get an index on it. On PostgreSQL each feed table becomes
``PARTITION BY RANGE (receive_ts)`` with one partition per UTC day in the ``feed_partitions``
schema (``<table>_pYYYYMMDD``) and a DEFAULT partition (``<table>_default``) so that no insert
ever fails for want of a day; retention then drops whole days. The primary key becomes
``(id, receive_ts)`` (PostgreSQL requires the partition column in it); ids keep coming from the
same sequence. The rows move in the migration's transaction: one partition per day that has rows,
plus today and the next three days. SQLite is left unpartitioned (it only gets the index).

Downgrading moves the rows back into plain tables with the old primary key and indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEED_TABLES = ("book_snapshots", "book_deltas", "trades")
SCHEMA = "feed_partitions"
DAY_NS = 86_400 * 10**9
AHEAD_DAYS = 3
_ARRAY = "ARRAY[" + ", ".join(f"'{t}'" for t in FEED_TABLES) + "]"

PARTITION = f"""
DO $$
DECLARE
    t text;
    old text;
    seq text;
    d bigint;
    today bigint := (extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC'))::bigint * 1000000000) / {DAY_NS};
BEGIN
    FOREACH t IN ARRAY {_ARRAY} LOOP
        old := t || '_unpartitioned';
        seq := pg_get_serial_sequence(t, 'id');
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, old);
        EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', old, 'pk_' || t, 'pk_' || old);
        EXECUTE format('ALTER INDEX %I RENAME TO %I', 'ix_' || t || '_asset_id_id', 'ix_' || old || '_asset_id_id');
        EXECUTE format(
            'CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS, CONSTRAINT %I PRIMARY KEY (id, receive_ts)) '
            'PARTITION BY RANGE (receive_ts)', t, old, 'pk_' || t);
        EXECUTE format('CREATE INDEX %I ON %I (asset_id, id)', 'ix_' || t || '_asset_id_id', t);
        EXECUTE format('CREATE INDEX %I ON %I (receive_ts)', 'ix_' || t || '_receive_ts', t);
        EXECUTE format('CREATE TABLE {SCHEMA}.%I PARTITION OF %I DEFAULT', t || '_default', t);
        FOR d IN EXECUTE format(
            'SELECT receive_ts / {DAY_NS} FROM %I UNION SELECT generate_series(%s, %s) ORDER BY 1',
            old, today, today + {AHEAD_DAYS})
        LOOP
            EXECUTE format(
                'CREATE TABLE {SCHEMA}.%I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
                t || '_p' || to_char(to_timestamp(d * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
                t, d * {DAY_NS}, (d + 1) * {DAY_NS});
        END LOOP;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t, old);
        IF seq IS NOT NULL THEN
            EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.id', seq, t);
        END IF;
        EXECUTE format('DROP TABLE %I', old);
    END LOOP;
END $$
"""

UNPARTITION = f"""
DO $$
DECLARE
    t text;
    plain text;
    seq text;
BEGIN
    FOREACH t IN ARRAY {_ARRAY} LOOP
        plain := t || '_unpartitioned';
        seq := pg_get_serial_sequence(t, 'id');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', plain, t);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', plain, t);
        IF seq IS NOT NULL THEN
            EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.id', seq, plain);
        END IF;
        EXECUTE format('DROP TABLE %I', t);
        EXECUTE format('ALTER TABLE %I RENAME TO %I', plain, t);
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)', t, 'pk_' || t);
        EXECUTE format('CREATE INDEX %I ON %I (asset_id, id)', 'ix_' || t || '_asset_id_id', t);
    END LOOP;
END $$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        op.execute(PARTITION)
        return
    for table in FEED_TABLES:
        op.create_index(op.f(f"ix_{table}_receive_ts"), table, ["receive_ts"], unique=False)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(UNPARTITION)
        op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA}")
        return
    for table in FEED_TABLES:
        op.drop_index(op.f(f"ix_{table}_receive_ts"), table_name=table)
