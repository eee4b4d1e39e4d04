"""Trade settlement faults (live mode, CLOB double, user channel over a cuttable proxy).

- The user channel drops after MATCHED and stays away until the trade is CONFIRMED: the REST
  resync on reconnect must deliver the confirmation, applied exactly once (a second resync
  delivers it again and changes nothing).
- The settlement FAILS after MATCHED: the position must not change, the order is failed, and the
  trader hears of it once, naming the order and saying the settlement failed.

The double holds settlement until the test has done what must come first (``hold_settlements``),
so no step races the clock.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from core.events import Alert
from core.execution.types import OrderStatus
from core.money import from_units
from tests.faults.fault_harness import (
    WAIT_S,
    FaultRecord,
    Rig,
    arm,
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
    await arm(rig)
    await wait_for(lambda: rig.service.relayer.user_channel.connected.is_set(), WAIT_S, "the user channel")
    outcome = await asyncio.wait_for(place_via_control(rig, "0.30", str(SIZE)), 2 * WAIT_S)
    return outcome.client_order_id, token


async def _fills(rig: Rig, coid: str) -> list[tuple[str, str, Decimal]]:
    rows = await query(rig.db_url, "SELECT trade_id, status, size FROM fills WHERE client_order_id = :c", c=coid)
    return [(str(r[0]), str(r[1]), from_units(int(r[2]))) for r in rows]


async def _stored_position(rig: Rig, token: str) -> list[Decimal]:
    rows = await query(rig.db_url, "SELECT size FROM positions WHERE token_id = :t", t=token)
    return [from_units(int(r[0])) for r in rows]


def _venue_trades(rig: Rig, token: str) -> list[object]:
    return [t for t in rig.clob.trades.values() if t.asset_id == token]


def _shares(rig: Rig, token: str) -> Decimal:
    pos = rig.service.engine.positions.get(token)
    return Decimal(0) if pos is None else pos.shares


async def test_user_channel_drops_between_matched_and_confirmed(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "user channel drops between MATCHED and CONFIRMED (away until confirmed)"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, user_proxy=True) as rig:
        rig.clob.hold_settlements()  # MATCHED goes out; CONFIRMED waits for the test
        coid, token = await _marketable(rig)
        # MATCHED reached us over the user channel: the fill is recorded, not yet applied
        rows = await wait_for(lambda: _fills(rig, coid), WAIT_S, "the MATCHED trade over the user channel")
        assert [s for _, s, _ in rows] == ["matched"]
        assert _shares(rig, token) == 0
        proxy = rig.proxies["user"]
        proxy.block(600)  # away until the test lets it back
        assert proxy.cut() == 1
        rig.clob.release_settlements()
        trades = _venue_trades(rig, token)
        await wait_for(lambda: trades and all(t.status == "CONFIRMED" for t in trades), WAIT_S, "the venue to confirm")
        await wait_for(lambda: proxy.refused >= 1, WAIT_S, "a reconnect refused while the trade confirmed")
        assert _shares(rig, token) == 0, "nothing could have told the service of the confirmation"
        proxy.block(0)
        relayer = rig.service.relayer
        await wait_for(lambda: relayer.stats["resyncs"] >= 1, WAIT_S, "the user channel to reconnect and resync")
        await wait_for(lambda: _shares(rig, token) == SIZE, WAIT_S, "the confirmed fill to reach the position")
        # another drop: the next resync reads the same CONFIRMED trade again, which must change nothing
        translator = relayer.translator
        duplicates = translator.stats["trade_duplicate"]
        assert proxy.cut() == 1
        await wait_for(
            lambda: translator.stats["trade_duplicate"] > duplicates, WAIT_S, "the second resync to resend the trade"
        )
        await rig.service.bus.drain()
        rows = await _fills(rig, coid)
        venue_size = sum((t.size for t in trades), Decimal(0))
        fault_record.posts = rig.posts()
        fault_record.orders_placed, fault_record.orders_expected = len(rig.clob.orders), 1
        fault_record.rows_expected, fault_record.rows_stored = len(trades), len(rows)
        fault_record.alerts = "none (the resync settles it)"
        fault_record.counters = {
            "refused_reconnects": proxy.refused,
            "resyncs": relayer.stats["resyncs"],
            "trade_duplicate": translator.stats["trade_duplicate"],
            "position": str(_shares(rig, token)),
            "venue_matched": str(venue_size),
        }
        assert rig.posts() == 1
        assert len(rows) == len(trades) == 1
        assert [(s, z) for _, s, z in rows] == [("confirmed", SIZE)], rows
        assert _shares(rig, token) == venue_size == SIZE
        assert rig.service.engine.order(coid).status is OrderStatus.FILLED
        assert await _stored_position(rig, token) == [SIZE]


async def _failed_settlement(rig: Rig) -> tuple[str, str]:
    """A marketable order whose trade goes MATCHED, then FAILED at settlement; returns once the
    service has marked the order failed and the fill failed in the database."""
    rig.clob.fail_next_settlements = 1
    coid, token = await _marketable(rig)
    engine = rig.service.engine
    await wait_for(lambda: engine.order(coid).status is OrderStatus.FAILED, WAIT_S, "the order to be failed")

    async def fill_failed() -> bool:
        return [s for _, s, _ in await _fills(rig, coid)] == ["failed"]

    await wait_for(fill_failed, WAIT_S, "the stored fill to be marked failed")
    await wait_for(lambda: _told(rig, coid), WAIT_S, "an alert naming the order")
    await wait_for(lambda: rig.tg_alerts("order_failed"), WAIT_S, "the alert to reach Telegram")
    await rig.service.bus.drain()
    return coid, token


def _told(rig: Rig, coid: str) -> list[Alert]:
    """Alerts (not notices) naming the order."""
    return [e for e in rig.events if isinstance(e, Alert) and coid in e.message and str(e.severity) != "info"]


async def test_settlement_fails_after_matched(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "settlement FAILS after MATCHED: no position, order failed, the trader told why, once"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True) as rig:
        coid, token = await _failed_settlement(rig)
        told = _told(rig, coid)
        fills = await _fills(rig, coid)
        stored_order = await query(rig.db_url, "SELECT status FROM orders WHERE client_order_id = :c", c=coid)
        fault_record.posts = rig.posts()
        fault_record.orders_placed, fault_record.orders_expected = len(rig.clob.orders), 1
        fault_record.rows_expected, fault_record.rows_stored = 1, len(fills)
        fault_record.counters = {
            "order_status": str(rig.service.engine.order(coid).status),
            "fills": [s for _, s, _ in fills],
            "position": str(_shares(rig, token)),
        }
        fault_record.alerts = "; ".join(f"{a.kind}: {a.message}" for a in told)
        assert rig.posts() == 1
        assert _shares(rig, token) == 0, "a failed trade must not make a position"
        assert sum(await _stored_position(rig, token), Decimal(0)) == 0
        assert [s for _, s, _ in fills] == ["failed"]
        assert rig.service.engine.order(coid).status is OrderStatus.FAILED
        assert [str(r[0]) for r in stored_order] == [OrderStatus.FAILED.value]
        # the trader hears of it once, in chat, naming the order and saying why
        assert [a.kind for a in told] == ["order_failed"], told
        tg = rig.tg_alerts("order_failed")
        assert len(tg) == 1 and coid in tg[0] and "settlement failed" in tg[0], tg
        assert rig.service.risk.armed, "one failed settlement must not disarm the service"
        await rig.frames_advance(10)
