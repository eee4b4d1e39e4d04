"""A live Dutch group through the whole service (CLOB double over a real socket, user channel):
the venue answers the batch "matched" for both legs at once, and their trades settle later. The
group waits for them (pending, not failed; the matched shares count as settling), then completes
with both positions. Before cfff8d9 such a group was judged failed the moment the answer came, and
was never looked at again (a leg whose trade then failed would have raised no one-legged alert)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.execution.engine import GroupState
from core.types import Intent, OrderType, Side
from tests.faults.fault_harness import BINARY, WAIT_S, FaultRecord, arm, running_service, wait_for

SIZE = Decimal(10)


async def test_a_live_group_waits_for_its_trades_then_completes(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "live Dutch group: batch answered matched, settlement held, then released"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True) as rig:
        assert rig.clob is not None
        market = rig.service.registry.resolve(BINARY)
        yes, no = (str(market.token(o).token_id) for o in ("Yes", "No"))
        rig.clob.set_book(yes, [], [(Decimal("0.40"), Decimal(100))])
        rig.clob.set_book(no, [], [(Decimal("0.50"), Decimal(100))])
        rig.clob.hold_settlements()  # MATCHED goes out; CONFIRMED waits for the test
        await arm(rig)
        relayer, engine = rig.service.relayer, rig.service.engine
        await wait_for(lambda: relayer.user_channel.connected.is_set(), WAIT_S, "the user channel")
        legs = [
            Intent(market.condition_id, yes, Side.BUY, Decimal("0.40"), SIZE, OrderType.FOK, group_id="g-live"),
            Intent(market.condition_id, no, Side.BUY, Decimal("0.50"), SIZE, OrderType.FOK, group_id="g-live"),
        ]
        res = await engine.submit_group(legs, [market])
        assert res.ok, res
        assert res.state is GroupState.PENDING, "a matched group judged before its trades settled"
        assert (engine.settling_shares(yes), engine.settling_shares(no)) == (SIZE, SIZE)
        rig.clob.release_settlements()
        await wait_for(lambda: engine.group_state(res.group_id) is GroupState.COMPLETE, WAIT_S, "the group to complete")
        shares = [p.shares if (p := engine.positions.get(t)) is not None else None for t in (yes, no)]
        assert shares == [SIZE, SIZE]
        assert (engine.settling_shares(yes), engine.settling_shares(no)) == (0, 0)
        assert rig.alerts("one_legged") == []
        batches = len(rig.clob.requests_to("POST", "/orders"))
        fault_record.posts = batches + rig.posts()
        fault_record.orders_placed, fault_record.orders_expected = len(rig.clob.orders), 2
        fault_record.alerts = "none"
        assert (batches, rig.posts()) == (1, 0)  # one batch, no single post
