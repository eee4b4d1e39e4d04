"""The CLOB double keeps a ledger like the venue: trades move pUSD and shares, ``GET /balance-allowance``
answers from it, orders beyond it are refused, and a failed settlement undoes its trade.

Driven through the project's live CLOB relayer over a real socket (what the service reads).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from core.execution.relayers.clob import ClobRelayer
from core.execution.types import OrderRequest, Outcome
from core.sim.mock_clob import MockClobServer
from core.types import OrderType, Side

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.fixture
async def venue() -> AsyncIterator[tuple[MockClobServer, ClobRelayer]]:
    async with MockClobServer(confirm_delay_s=0.05) as server:
        server.set_balance(ADDRESS, Decimal(100))
        relayer = ClobRelayer(server.url, 137, KEY, dry_run=False, derive_api_key=True, heartbeat_interval_s=0)
        await relayer.start()
        try:
            yield server, relayer
        finally:
            await relayer.close()


def _order(server: MockClobServer, coid: str, side: Side, price: str, size: str) -> OrderRequest:
    market = next(m for m in server.markets.values() if not m.neg_risk)
    yes = market.tokens[0][0]
    return OrderRequest(coid, market.condition_id, yes, side, Decimal(price), Decimal(size), OrderType.GTC)


async def test_trades_move_the_balances_the_venue_reports(venue: tuple[MockClobServer, ClobRelayer]) -> None:
    server, relayer = venue
    buy = _order(server, "b1", Side.BUY, "0.52", "10")  # takes the 0.52 ask: fee 10 x 0.05 x 0.52 x 0.48
    assert await relayer.collateral_balance() == Decimal(100)
    balance, allowance = await relayer.collateral_balance_allowance()
    assert balance == Decimal(100) and allowance is not None and allowance >= 2**255 / Decimal(10**6)
    assert await relayer.token_balance(buy.token_id) == 0
    assert (await relayer.place(buy)).outcome is Outcome.ACCEPTED
    assert await relayer.collateral_balance() == Decimal("100") - Decimal("5.2") - Decimal("0.1248")
    assert await relayer.token_balance(buy.token_id) == Decimal(10)

    too_many = await relayer.place(_order(server, "s1", Side.SELL, "0.60", "11"))
    assert too_many.outcome is Outcome.REJECTED and "not enough balance" in too_many.error
    resting = await relayer.place(_order(server, "s2", Side.SELL, "0.60", "6"))  # rests: promises 6 shares
    assert resting.outcome is Outcome.ACCEPTED
    promised = await relayer.place(_order(server, "s3", Side.SELL, "0.60", "5"))
    assert promised.outcome is Outcome.REJECTED and "not enough balance" in promised.error
    too_dear = await relayer.place(_order(server, "b2", Side.BUY, "0.40", "250"))  # 100 pUSD > what is left
    assert too_dear.outcome is Outcome.REJECTED and "not enough balance" in too_dear.error


async def test_a_failed_settlement_gives_the_money_back(venue: tuple[MockClobServer, ClobRelayer]) -> None:
    server, relayer = venue
    server.fail_next_settlements = 1
    buy = _order(server, "b1", Side.BUY, "0.52", "10")
    assert (await relayer.place(buy)).outcome is Outcome.ACCEPTED
    assert await relayer.token_balance(buy.token_id) == Decimal(10)  # matched: moved at once
    async with asyncio.timeout(30):
        while not all(t.status == "FAILED" for t in server.trades.values()):  # noqa: ASYNC110 - the double settles
            await asyncio.sleep(0.02)
    assert await relayer.collateral_balance() == Decimal(100)
    assert await relayer.token_balance(buy.token_id) == 0
