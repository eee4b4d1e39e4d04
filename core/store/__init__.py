"""Storage: SQLAlchemy models, database access, batched writer, Alembic migrations."""
