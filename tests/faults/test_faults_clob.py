"""CLOB faults against a live-mode Service and the CLOB double (real HTTP, real SQLite).

Orders go the way a confirmed Telegram /order goes (control.prepare_order -> execute_order,
confirmed). For each venue answer we count POST /order at the double and the orders that exist
there: an order is never placed twice, retries happen only where nothing was placed, unknown
outcomes are looked up (never re-posted), and the right alert fires.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from core.execution.types import OrderStatus
from tests.faults.fault_harness import (
    WAIT_S,
    FaultRecord,
    arm,
    binary_yes,
    execute,
    order_rows,
    place_via_control,
    prepare,
    running_service,
    wait_for,
)


@dataclass(frozen=True)
class Case:
    kind: str
    inject: dict[str, Any]
    posts: int  # POST /order requests the double must see
    at_venue: int  # orders that must exist at the double
    status: OrderStatus  # the order's status afterwards
    alert: str | None  # the alert that must fire exactly once
    cleared: bool  # and clear (the order was found)
    what: str


CASES = [
    Case("400", {}, 1, 0, OrderStatus.REJECTED, "order_rejected", False, "CLOB answers 400 (venue refuses)"),
    Case("425", {}, 2, 1, OrderStatus.LIVE, None, False, "CLOB answers 425 (engine restarting), then accepts"),
    Case("429", {"retry_after": 1}, 2, 1, OrderStatus.LIVE, None, False, "CLOB answers 429 Retry-After: 1"),
    Case("500", {}, 1, 0, OrderStatus.SUBMITTED_UNKNOWN, "unknown_outcome", False, "CLOB answers 500"),
    Case("503", {}, 2, 1, OrderStatus.LIVE, None, False, "CLOB answers 503 (cancel-only), then accepts"),
    # the double holds these answers far past the client's 1 s timeout (released when it stops)
    Case("hang", {"delay_s": 60}, 1, 0, OrderStatus.SUBMITTED_UNKNOWN, "unknown_outcome", False, "CLOB hangs"),
    Case(
        "timeout_after_accept",
        {"delay_s": 60},
        1,
        1,
        OrderStatus.LIVE,
        "unknown_outcome",
        True,
        "CLOB accepts, answers after the client timeout",
    ),
    Case(
        "drop_after_accept",
        {},
        1,
        1,
        OrderStatus.LIVE,
        "unknown_outcome",
        True,
        "CLOB accepts, drops the connection unanswered",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
async def test_clob_fault_on_post_order(
    case: Case, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = case.what
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True) as rig:
        await arm(rig)
        rig.clob.inject(case.kind, **case.inject)
        started = asyncio.get_running_loop().time()
        ticket = await prepare(rig, "0.20")
        outcome = await asyncio.wait_for(execute(rig, ticket), 2 * WAIT_S)
        took = asyncio.get_running_loop().time() - started
        engine = rig.service.engine
        rec = engine.order(outcome.client_order_id)
        assert rec is not None
        # the same confirmed ticket again (a replayed tap, a retrying client): never a second order
        again = await asyncio.wait_for(execute(rig, ticket), 2 * WAIT_S)
        assert again.client_order_id == outcome.client_order_id
        assert again.message.startswith("duplicate")
        await rig.service.bus.drain()
        posts = rig.clob.requests_to("POST", "/order")
        venue_orders = [o for o in rig.clob.orders.values() if o.price == rec.price and o.asset_id == binary_yes(rig)]
        fault_record.posts = len(posts)
        fault_record.orders_placed = len(venue_orders)
        fault_record.orders_expected = case.at_venue
        fault_record.alerts = rig.alert_summary(case.alert) if case.alert else "none"
        fault_record.counters = {
            "status": str(rec.status),
            "seconds": round(took, 2),
            **{k: v for k, v in engine.relayer.stats.items() if k.startswith("place")},
        }
        rows = await order_rows(rig.db_url)
        fault_record.rows_expected, fault_record.rows_stored = 1, len(rows)

        # one order row, holding what the engine knows (a restart reads this row, not memory)
        assert [(r[0], r[1]) for r in rows] == [(outcome.client_order_id, rec.status.value)], rows
        first = [p for p in posts if p.fault is not None or p is posts[0]]
        assert rec.status is case.status, outcome
        assert len(venue_orders) == case.at_venue
        assert len(posts) == case.posts
        assert first and first[0].fault == case.kind
        if case.kind == "429":
            gap = posts[1].at - posts[0].at
            assert gap >= 0.9, f"the retry ignored Retry-After (sent {gap:.2f}s later)"
        if case.alert is not None:
            assert len(rig.alerts(case.alert)) == 1
            assert len(rig.tg_alerts(case.alert)) == 1
        else:
            assert not [a for a in rig.events if a.kind in ("order_rejected", "unknown_outcome")]
        assert bool(rig.cleared(case.alert or "-")) is case.cleared
        assert rig.service.risk.armed, "one venue error must not disarm the service"
        await rig.frames_advance(10)


async def test_unknown_outcome_settles_while_running(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "CLOB hangs; the unknown order is settled later while the service runs"
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True) as rig:
        await arm(rig)
        rig.clob.inject("hang", delay_s=60)  # far past the client's timeout; released when the double stops
        outcome = await asyncio.wait_for(place_via_control(rig, "0.20"), 2 * WAIT_S)
        engine = rig.service.engine
        assert engine.order(outcome.client_order_id).status is OrderStatus.SUBMITTED_UNKNOWN
        rig.clock.advance(engine.unknown_grace_s + 1)  # the grace period is over: it was never placed
        fault_record.posts = rig.posts()
        fault_record.orders_placed, fault_record.orders_expected = len(rig.clob.orders), 0
        fault_record.alerts = rig.alert_summary("unknown_outcome")
        await wait_for(
            lambda: engine.order(outcome.client_order_id).status is OrderStatus.FAILED,
            WAIT_S,
            "the unknown order to be settled as never placed",
        )
        await wait_for(lambda: rig.cleared("unknown_outcome"), WAIT_S, "the unknown_outcome alert to clear")
        rows = await order_rows(rig.db_url)
        fault_record.rows_expected, fault_record.rows_stored = 1, len(rows)
        assert [(r[0], r[1]) for r in rows] == [(outcome.client_order_id, OrderStatus.FAILED.value)], rows
        assert rig.posts() == 1 and not rig.clob.orders, "an unknown outcome is looked up, never re-posted"
        assert (await rig.service.control.health()).ok
