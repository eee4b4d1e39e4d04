"""Trade settlement faults (live mode, CLOB double, user channel over a cuttable proxy).

- The user channel drops after MATCHED and stays away until the trade is CONFIRMED: the REST
  resync on reconnect must deliver the confirmation, applied exactly once.
- The settlement FAILS after MATCHED: the position must not change, and the trader must hear of it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from core.events import Alert
from core.execution.types import OrderStatus
from core.money import from_units
from tests.faults.fault_harness import (
    FaultRecord,
    Rig,
    binary_yes,
    place_via_control,
    query,
    running_service,
    wait_for,
)

SIZE = Decimal(10)


async def _marketable(rig: Rig) -> tuple[str, str]:
    """Arm, give the double an ask to hit, place a BUY that crosses it; returns (coid, token)."""
    token = binary_yes(rig)
    rig.clob.set_book(token, [], [(Decimal("0.30"), Decimal(100))])
    await rig.wait_books_ok()
    assert (await rig.service.control.arm("test")).ok
    await wait_for(lambda: rig.service.relayer.user_channel.connected.is_set(), 5, "the user channel")
    outcome = await asyncio.wait_for(place_via_control(rig, "0.30", str(SIZE)), 15)
    return outcome.client_order_id, token


async def _fills(rig: Rig, coid: str) -> list[tuple[str, str, Decimal]]:
    rows = await query(rig.db_url, "SELECT trade_id, status, size FROM fills WHERE client_order_id = :c", c=coid)
    return [(str(r[0]), str(r[1]), from_units(int(r[2]))) for r in rows]


def _venue_trades(rig: Rig, token: str) -> list[object]:
    return [t for t in rig.clob.trades.values() if t.asset_id == token]


async def test_user_channel_drops_between_matched_and_confirmed(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "user channel drops between MATCHED and CONFIRMED (away until confirmed)"
    async with running_service(
        sqlite_url,
        monkeypatch,
        feed="demo",
        rate_hz=50.0,
        live=True,
        user_proxy=True,
        clob_kwargs={"confirm_delay_s": 1.0},
    ) as rig:
        coid, token = await _marketable(rig)
        # MATCHED reached us over the user channel: the fill is recorded, not yet applied
        rows: list[tuple[str, str, Decimal]] = []

        async def matched() -> bool:
            rows[:] = await _fills(rig, coid)
            return bool(rows)

        deadline = asyncio.get_running_loop().time() + 5
        while not await matched():
            assert asyncio.get_running_loop().time() < deadline, "no MATCHED trade over the user channel"
            await asyncio.sleep(0.05)
        assert [s for _, s, _ in rows] == ["matched"]
        assert rig.service.engine.positions.get(token) is None or rig.service.engine.positions.get(token).shares == 0
        proxy = rig.proxies["user"]
        proxy.block(1.6)  # CONFIRMED (at +1.0 s) goes out while we are away
        assert proxy.cut() == 1
        relayer = rig.service.relayer
        await wait_for(lambda: relayer.stats["resyncs"] >= 1, 8, "the user channel to reconnect and resync")
        await wait_for(
            lambda: (p := rig.service.engine.positions.get(token)) is not None and p.shares == SIZE,
            5,
            "the confirmed fill to reach the position",
        )
        await asyncio.sleep(0.5)  # a late duplicate (ws + REST) would land now
        await rig.service.bus.drain()
        rows = await _fills(rig, coid)
        trades = _venue_trades(rig, token)
        venue_size = sum((t.size for t in trades), Decimal(0))
        fault_record.posts = rig.posts()
        fault_record.orders_placed, fault_record.orders_expected = len(rig.clob.orders), 1
        fault_record.rows_expected, fault_record.rows_stored = len(trades), len(rows)
        fault_record.alerts = "none (the resync settles it)"
        fault_record.counters = {
            "refused_reconnects": proxy.refused,
            "resyncs": relayer.stats["resyncs"],
            "trade_duplicate": relayer.translator.stats["trade_duplicate"],
            "position": str(rig.service.engine.positions.get(token).shares),
            "venue_matched": str(venue_size),
        }
        assert rig.posts() == 1
        assert [(s, z) for _, s, z in rows] == [("confirmed", SIZE)], rows
        assert rig.service.engine.positions.get(token).shares == venue_size == SIZE
        assert rig.service.engine.order(coid).status is OrderStatus.FILLED
        stored = await query(rig.db_url, "SELECT size FROM positions WHERE token_id = :t", t=token)
        assert [from_units(int(r[0])) for r in stored] == [SIZE]


async def _failed_settlement(rig: Rig) -> tuple[str, str]:
    rig.clob.fail_next_settlements = 1
    coid, token = await _marketable(rig)
    translator = rig.service.relayer.translator
    await wait_for(lambda: translator.stats["trade_failed"] >= 1, 5, "the FAILED trade over the user channel")
    await asyncio.sleep(0.3)
    await rig.service.bus.drain()
    return coid, token


async def test_settlement_fails_after_matched(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "settlement FAILS after MATCHED: no position from a failed trade"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True) as rig:
        coid, token = await _failed_settlement(rig)
        pos = rig.service.engine.positions.get(token)
        fault_record.posts = rig.posts()
        fault_record.orders_placed, fault_record.orders_expected = len(rig.clob.orders), 1
        fault_record.counters = {
            "order_status": str(rig.service.engine.order(coid).status),
            "fills": [s for _, s, _ in await _fills(rig, coid)],
            "position": str(pos.shares if pos else 0),
        }
        kinds = sorted({e.kind for e in rig.events if isinstance(e, Alert) and e.kind != "service"})
        fault_record.alerts = ", ".join(kinds) or "none (see the known-bug row)"
        assert rig.posts() == 1
        assert pos is None or pos.shares == 0, "a failed trade must not make a position"
        assert all(s != "confirmed" for _, s, _ in await _fills(rig, coid))
        await rig.frames_advance(10)


async def test_failed_settlement_is_reported(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "settlement FAILS after MATCHED: the trader is alerted, the order is not 'filled'"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True) as rig:
        coid, _token = await _failed_settlement(rig)
        fault_record.posts = rig.posts()
        fault_record.orders_placed, fault_record.orders_expected = len(rig.clob.orders), 1
        told = [e for e in rig.events if isinstance(e, Alert) and coid in e.message and str(e.severity) != "info"]
        fault_record.alerts = f"alerts naming the order: {len(told)}"
        assert rig.service.engine.order(coid).status is not OrderStatus.FILLED
        assert [s for _, s, _ in await _fills(rig, coid)] == ["failed"]
        assert len(told) == 1
