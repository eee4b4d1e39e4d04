"""What the bot tests start from: a database of the Gamma fixture's markets, filled the way a user
fills it (``polybot refresh-markets`` against the Gamma double), and the command audit it keeps.
The ``template_db`` / ``markets_db`` fixtures (tests/integration/conftest.py) build on these."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import select

from core.sim.mock_gamma import MockGammaServer
from core.store.db import create_engine, session_factory
from core.store.models import CommandAudit
from polybot.cli.main import main
from tests.loop_thread import LoopThread


@contextmanager
def gamma_in_thread(markets: Sequence[object] | None = None) -> Iterator[str]:
    """The Gamma double (default: fixtures/gamma/markets.json) on its own loop; yields its URL."""
    loop = LoopThread()
    server = MockGammaServer(markets=markets)
    try:
        yield loop.call(server.start())
    finally:
        loop.call(server.stop())
        loop.close()


def refresh_markets_cli(db_url: str, markets: Sequence[object] | None = None) -> None:
    with gamma_in_thread(markets) as url:
        assert main(["refresh-markets", url, "--db-url", db_url, "--migrate"]) == 0


async def audit_rows(db_url: str) -> list[CommandAudit]:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            return list((await session.execute(select(CommandAudit).order_by(CommandAudit.id))).scalars())
    finally:
        await engine.dispose()
