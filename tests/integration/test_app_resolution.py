"""Market resolution, end to end: a running service (market double over a real socket, Gamma and
CLOB doubles, the Telegram double), paper trading with the spread quoter resting orders on the
demo binary market and a position of ours; then ``market_resolved`` on the feed (or Gamma showing
the market closed at the scheduled refresh).

Resolution must: stop the strategies on the market (no order of it after), cancel its open
orders, mark it closed in the markets table, set its books ``closed`` (and keep them so while the
feed goes on), and alert exactly once with the winner and what we hold of it; a repeat does nothing.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest

from core.events import AlertKind, OrderEvent, Recorder
from core.types import BookStatus, OrderStatus
from tests.faults.fault_harness import (
    BINARY,
    WAIT_S,
    Rig,
    arm,
    place_via_control,
    query,
    running_service,
    wait_for,
)
from tests.integration.polling import until

KIND = AlertKind.MARKET_RESOLVED.value
SPREAD_ON = {
    "strategies__spread__enabled": "true",
    "strategies__spread__markets": [BINARY],
    "strategies__dutch__enabled": "true",
    "strategies__dutch__markets": [BINARY],
}
OPEN = (OrderStatus.NEW, OrderStatus.LIVE, OrderStatus.PARTIALLY_FILLED)


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


async def _trading(rig: Rig) -> tuple[Any, str, str]:
    """Armed, quotes resting on the market, and a position in its No token (bought at the ask)."""
    await arm(rig)
    market = rig.service.registry.resolve(BINARY)
    yes, no = market.token("Yes").token_id, market.token("No").token_id
    engine = rig.service.engine
    await wait_for(
        lambda: any(o.market == market.condition_id and o.status in OPEN for o in engine.open_orders()),
        WAIT_S,
        "the quoter resting orders",
    )
    ask = rig.service.processor.books[no].best_ask()
    assert ask is not None
    outcome = await place_via_control(rig, str(ask), "20", outcome="No")
    assert engine.order(outcome.client_order_id) is not None
    await wait_for(lambda: (p := engine.positions.get(no)) is not None and p.shares > 0, WAIT_S, "a No position")
    return market, yes, no


async def _no_open_row(rig: Rig, cid: str) -> bool:
    rows = await query(rig.db_url, "SELECT status FROM orders WHERE market = :m", m=cid)
    return not {r[0] for r in rows} & {s.value for s in OPEN}


def _resolved_frame(condition_id: str, yes: str, no: str) -> str:
    return json.dumps(
        {
            "event_type": "market_resolved",
            "market": condition_id,
            "assets_ids": [yes, no],
            "winning_asset_id": no,
            "winning_outcome": "No",
            "timestamp": int(time.time() * 1000),
        }
    )


async def _check_resolved(rig: Rig, market: Any, no: str, orders: Recorder, *, left_feed: bool = False) -> None:
    engine, cid = rig.service.engine, market.condition_id
    await wait_for(lambda: rig.alerts(KIND), WAIT_S, "the market_resolved alert")
    await wait_for(lambda: rig.tg_alerts(KIND), WAIT_S, "the alert on Telegram")
    held = engine.positions.get(no)
    assert held is not None and held.shares > 0
    n = _plain(held.shares)
    [alert] = rig.alerts(KIND)
    assert alert.message.startswith(
        f"resolved: {market.question} → No; you hold {n} winning shares (redeemable {n} pUSD)"
    ), alert.message
    [sent] = rig.tg_alerts(KIND)
    assert f"you hold {n} winning shares" in sent
    # strategies stopped for it, its orders canceled, the market closed in the database
    trading = rig.service._up().system.trading
    assert not [q for q in trading.quoters if q.market.condition_id == cid]
    assert not [r for r in trading.dutch_runners if any(m.condition_id == cid for m in r.markets)]
    await wait_for(lambda: not [o for o in engine.open_orders() if o.market == cid], WAIT_S, "no open order left")
    # the engine's memory runs ahead of its rows (a status is set, then written): a quote worker's
    # own cancel (a placement under way when the market resolved, a replacement cancel in flight)
    # may end after the alert, its row still being written when memory shows the order canceled
    await until(lambda: _no_open_row(rig, cid), "the cancels in the orders table")
    rows = await query(rig.db_url, "SELECT status FROM orders WHERE market = :m", m=cid)
    assert OrderStatus.CANCELED.value in {r[0] for r in rows}, rows
    assert not {r[0] for r in rows} & {s.value for s in OPEN}, rows
    stored = await query(rig.db_url, "SELECT closed, active FROM markets WHERE condition_id = :m", m=cid)
    assert [(bool(r[0]), bool(r[1])) for r in stored] == [(True, False)]
    assert rig.service.registry.get(cid).closed
    if not left_feed:
        await _books_stay_closed(rig, market, orders)
        return
    # the refresh that saw it closed also took it off the feed: unsubscribed, its books dropped
    feed = rig.service.feed
    assert feed is not None
    tokens = {t.token_id for t in market.tokens}
    assert not tokens & set(feed.asset_ids)
    assert not tokens & set(rig.service.processor.books)


async def _books_stay_closed(rig: Rig, market: Any, orders: Recorder) -> None:
    cid = market.condition_id
    # no new intent for it afterwards, and its books stay closed while the feed goes on
    after = len(orders.of(OrderEvent))
    for token in market.tokens:  # a fresh snapshot (as after a reconnect) must not reopen the book
        rig.ws.send_book(token.token_id)
    await rig.frames_advance(20)
    late = [e for e in orders.of(OrderEvent)[after:] if e.market == cid and e.status is not OrderStatus.CANCELED]
    assert not late, late
    for token in market.tokens:
        assert rig.service.processor.books[token.token_id].status is BookStatus.CLOSED


async def test_market_resolved_on_the_feed_stops_cancels_closes_and_alerts_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(db_url, monkeypatch, feed="demo", rate_hz=200.0, env=SPREAD_ON) as rig:
        orders = Recorder(rig.service.bus, OrderEvent)
        market, yes, no = await _trading(rig)
        trading = rig.service._up().system.trading
        assert len(trading.dutch_runners) == 1 and len(trading.quoters) == 2
        rig.ws.send_raw(_resolved_frame(market.condition_id, yes, no))
        await _check_resolved(rig, market, no, orders)
        # the same notice again: nothing more
        rig.ws.send_raw(_resolved_frame(market.condition_id, yes, no))
        await rig.frames_advance(20)
        await rig.service.bus.drain()
        assert len(rig.alerts(KIND)) == 1
        assert len(rig.tg_alerts(KIND)) == 1


async def test_gamma_showing_the_market_closed_at_refresh_does_the_same(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(db_url, monkeypatch, feed="demo", rate_hz=200.0, env=SPREAD_ON) as rig:
        orders = Recorder(rig.service.bus, OrderEvent)
        market, _, no = await _trading(rig)
        assert rig.gamma is not None
        [item] = [m for m in rig.gamma.markets if isinstance(m, dict) and m.get("slug") == BINARY]
        item.update(closed=True, active=False, acceptingOrders=False, outcomePrices=json.dumps(["0", "1"]))
        await rig.service.jobs.refresh_markets()
        await _check_resolved(rig, market, no, orders, left_feed=True)
        await rig.service.jobs.refresh_markets()  # still closed at the next refresh: nothing more
        await rig.service.bus.drain()
        assert len(rig.alerts(KIND)) == 1
        # a Gamma answer that still lists it open (a lagging cache) does not reopen it
        item.update(closed=False, active=True, acceptingOrders=True)
        await rig.service.jobs.refresh_markets()
        stored = await query(rig.db_url, "SELECT closed FROM markets WHERE condition_id = :m", m=market.condition_id)
        assert [bool(r[0]) for r in stored] == [True]
        assert rig.service.registry.get(market.condition_id).closed
        assert len(rig.alerts(KIND)) == 1
        # ... nor when the refresh stored that answer and the next Gamma question then failed
        refresh = rig.service.jobs._market_refresh

        async def gamma_down(client: object) -> list[object]:
            raise RuntimeError("Gamma 503")

        monkeypatch.setattr(refresh, "_closed_at_gamma", gamma_down)
        await rig.service.jobs.refresh_markets()
        stored = await query(rig.db_url, "SELECT closed FROM markets WHERE condition_id = :m", m=market.condition_id)
        assert [bool(r[0]) for r in stored] == [True]
