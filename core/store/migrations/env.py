"""Alembic environment for Polybot (run programmatically by :mod:`core.store.migrate`).

Online mode uses the connection handed over in ``config.attributes["connection"]`` (a sync
facade over our async connection); offline mode (``--print-sql``) only needs the dialect
name in ``config.attributes["dialect_name"]`` and never connects.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from core.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_common() -> dict[str, object]:
    return {"target_metadata": target_metadata, "compare_type": True}


def run_offline() -> None:
    dialect_name = config.attributes.get("dialect_name")
    if dialect_name is None:
        from core.store.db import parse_db_url

        dialect_name = parse_db_url(config.get_main_option("sqlalchemy.url")).get_backend_name()
    context.configure(
        dialect_name=dialect_name,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_configure_common(),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        render_as_batch=connection.dialect.name == "sqlite",
        **_configure_common(),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    # only when someone runs the alembic CLI by hand: build our own engine from the config
    from core.store.db import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_with)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(_run_standalone())
    else:
        _run_with(connection)
