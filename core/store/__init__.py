"""Storage: SQLAlchemy models, database access, batched writer, Alembic migrations.

- :mod:`core.store.db`: URL handling (``sqlite:///`` / ``postgresql://`` -> async drivers),
  ``create_engine``, ``session_factory``, ``mask_url``;
- :mod:`core.store.models`: the schema; :mod:`core.store.columns`: exact money, UTC timestamps;
- :mod:`core.store.migrate`: Alembic run from inside the package (``upgrade_to_head``,
  ``offline_sql``, ``current_revision``);
- :mod:`core.store.writer`: ``BatchedWriter`` (bounded queue, bulk inserts, retries);
- :mod:`core.store.repo`: upserts and state helpers; :mod:`core.store.status`: ``gather_status``.
"""
