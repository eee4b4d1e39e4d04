"""Never sell shares you do not hold, never buy with money you do not have — in paper and live.

Was: in paper, holding 5 Yes, a SELL of 50 filled and the position went to -45; live, a SELL of 5
No with no position was accepted by the bot and a BUY beyond the pUSD balance only failed at the
venue. Now the risk gate refuses both before anything is sent (``insufficient_position`` /
``insufficient_balance``): paper against a configured bankroll and its own fills, live against the
venue's ``GET /balance-allowance`` (served by the CLOB double from its own ledger).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_account import Account

from core.control.types import ControlError
from core.execution.types import OrderStatus
from tests.faults.fault_harness import (
    BINARY,
    TEST_PRIVATE_KEY,
    FaultRecord,
    Rig,
    arm,
    binary_yes,
    place_via_control,
    running_service,
    wait_for,
)


async def _refused(rig: Rig, code: str, price: str, size: str, outcome: str = "Yes", side: str = "BUY") -> str:
    posts = rig.posts()
    with pytest.raises(ControlError) as info:
        await place_via_control(rig, price, size, outcome, side)
    assert info.value.reason_code == code, str(info.value)
    assert rig.posts() == posts  # nothing reached the venue
    return str(info.value)


async def test_paper_never_sells_more_than_it_holds(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "paper: sell 50 while holding 5; sell what open sells already promised"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0) as rig:
        await arm(rig)
        yes = binary_yes(rig)
        book = rig.service.processor.books[yes]
        ask = book.best_ask()
        assert ask is not None
        bought = await place_via_control(rig, str(ask), "5")
        assert bought.status == "filled", bought
        assert rig.service.engine.positions.get(yes).shares == Decimal(5)
        detail = await _refused(rig, "insufficient_position", "0.30", "50", side="SELL")
        assert "hold 5" in detail
        # a resting sell of all 5 promises them: one more share is refused
        high = "0.99" if ask < Decimal("0.99") else str(ask)
        resting = await place_via_control(rig, high, "5", side="SELL")
        assert resting.status == "live", resting
        await _refused(rig, "insufficient_position", high, "5", side="SELL")
        assert rig.service.engine.positions.get(yes).shares == Decimal(5)  # never below what was bought
        fault_record.counters = {"position": "5", "refused": "insufficient_position x2"}


async def test_paper_buys_within_the_bankroll(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "paper: a bankroll of 20 pUSD refuses a 30 pUSD buy"
    env = {"risk__paper_bankroll": "20"}
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, env=env) as rig:
        await arm(rig)
        detail = await _refused(rig, "insufficient_balance", "0.30", "100")
        assert "20" in detail and "paper bankroll" in detail
        # a resting buy of 15 pUSD holds 15 of the 20: another 10 is too much, 5 is fine
        assert (await place_via_control(rig, "0.15", "100")).status == "live"
        await _refused(rig, "insufficient_balance", "0.10", "100")
        assert (await place_via_control(rig, "0.10", "50")).status == "live"


async def test_live_checks_the_venue_balance_and_shares(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "live: 20 pUSD at the venue, no No shares; then shares bought elsewhere"
    clob = {"balance": Decimal("20")}
    env = {"risk__max_order_notional": "10"}
    async with running_service(
        sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, clob_kwargs=clob, env=env
    ) as rig:
        await arm(rig)
        assert rig.service.funds.collateral == Decimal(20)  # read from the venue at start
        status = await rig.service.control.status()
        assert "collateral 20 pUSD" in status.funds and "venue balance" in status.funds
        await _refused(rig, "insufficient_position", "0.50", "5", outcome="No", side="SELL")
        # 2 x 9.6 pUSD rest; a third would need more than the 0.80 left
        for _ in range(2):
            assert (await place_via_control(rig, "0.48", "20")).status == "live"
        await _refused(rig, "insufficient_balance", "0.48", "20")
        # shares bought on the website: the venue knows them, and a sell of them goes out
        no = rig.service.registry.resolve(BINARY).token("No").token_id
        rig.clob.give_shares(Account.from_key(TEST_PRIVATE_KEY).address, no, Decimal(5))
        await rig.service.funds.refresh([no])  # what the next read (scheduled, or before a sell) sees
        sold = await place_via_control(rig, "0.90", "5", outcome="No", side="SELL")
        assert sold.status == "live", sold
        await wait_for(lambda: rig.posts() == 3, 10, "three orders at the venue")
        assert {o.status for o in rig.service.engine.open_orders()} == {OrderStatus.LIVE}
