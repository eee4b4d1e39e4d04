"""Runtime control through the real service and bot (offline runner, Bot API double):
``/strategy dutch off|on [MARKET]``, ``/params``, ``/set`` — operator; a loosening of a risk limit
needs the admin role and a confirmation card; every change audited, kept in the ``state`` table and
applied again when the service starts."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from bot.offline import TranscriptEntry, format_transcript
from core.app.strategies import dutch_config
from core.control.tuning import STATE_KEY
from core.strategies.runner import DutchRunner
from polybot.cli.tools.tgbot_cmd import LocalOptions, LocalSession, local_session
from polybot.updates import Updates
from tests.integration.bot_world import audit_rows

BINARY = "demo-btc-above-150k-2026"
MEMBER = "demo-cup-2026-aurora"
ADMIN, VIEWER, OPERATOR = 1001, 1002, 1003


class NoSink:
    def on_opportunity(self, *args: Any) -> None:
        return None


def _with_dutch(session: LocalSession) -> list[DutchRunner]:
    """Two Dutch runners (the binary market, the event's member) on the service's own books: the
    offline session names no strategy market itself (its feed is a replay)."""
    service = session.service
    cfg = dutch_config(service.settings)
    trading = service._up().system.trading
    runners = [
        DutchRunner([service.registry.resolve(BINARY)], cfg, NoSink(), service.processor),
        DutchRunner([service.registry.resolve(MEMBER)], cfg, NoSink(), service.processor),
    ]
    trading.dutch_runners[:] = runners
    return trading.dutch_runners


def _said(entry: TranscriptEntry) -> list[str]:
    return [c.get("text", "") for c in entry.calls if c["method"] in ("sendMessage", "editMessageText")]


def _nonce(entry: TranscriptEntry) -> str:
    return next(b["callback_data"][3:] for c in entry.calls for row in c.get("buttons", []) for b in row)


async def test_strategy_off_and_on_per_market(markets_db: str) -> None:
    u = Updates()
    async with local_session(LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")) as session:
        active = _with_dutch(session)
        t = await session.feed([u.msg(OPERATOR, "/strategy"), u.msg(OPERATOR, "/strategy dutch off")])
        assert "dutch: <b>on</b> (2 running, 0 paused)" in _said(t[0])[0]
        assert _said(t[1]) == ["⏸ dutch off: 2 runner(s) paused"] and active == []
        t = await session.feed(
            [
                u.msg(OPERATOR, f"/strategy dutch on {MEMBER}"),
                u.msg(VIEWER, "/strategy dutch on"),
                u.msg(OPERATOR, "/strategy"),
            ]
        )
        assert _said(t[2]) == [f"▶️ dutch on for {MEMBER}: 1 runner(s) resumed"]
        assert [r.markets[0].slug for r in active] == [MEMBER]
        assert _said(t[3]) == ["/strategy needs the operator role."]
        assert f"(1 running, 1 paused)\n  paused: {BINARY}" in _said(t[4])[0]
        t = await session.feed(
            [u.msg(OPERATOR, "/strategy dutch sideways"), u.msg(OPERATOR, "/strategy dutch on nowhere-x")]
        )
        assert "Usage: <code>/strategy" in _said(t[5])[0] and "⚠️" in _said(t[6])[0]
        print(format_transcript(t[1:3]))
    rows = [(r.command, r.arguments, r.result) for r in await audit_rows(markets_db)]
    assert ("strategy", "dutch off", "ok") in rows and ("strategy", "dutch on", "forbidden") in rows


async def test_set_tightens_at_once_and_a_loosening_needs_an_admin_and_a_card(markets_db: str) -> None:
    u = Updates()
    async with local_session(LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")) as session:
        risk = session.service.risk
        t = await session.feed(
            [
                u.msg(VIEWER, "/params"),
                u.msg(OPERATOR, "/set risk.max_order_notional 20"),
                u.msg(OPERATOR, "/set risk.max_order_notional 80"),
                u.msg(ADMIN, "/set risk.max_order_notional 80"),
            ]
        )
        assert re.search(r"risk\.max_order_notional +50 +pUSD\n", _said(t[0])[0])
        assert _said(t[1]) == ["✅ risk.max_order_notional: 50 → 20 (kept across restarts)"]
        assert risk.limits.max_order_notional == Decimal(20)
        assert _said(t[2]) == [
            "⛔ risk.max_order_notional: 20 → 80 loosens a risk limit: that needs the admin role. Nothing changed."
        ]
        card = t[3]
        assert _said(card)[0].startswith("<b>Loosen a risk limit?</b>\nrisk.max_order_notional: 20 → 80")
        nonce = _nonce(card)
        t = await session.feed(
            [u.tap(OPERATOR, f"pk:{nonce}"), u.tap(ADMIN, f"pk:{nonce}"), u.tap(ADMIN, f"pk:{nonce}")]
        )
        answers = [c.get("text") for e in t[4:] for c in e.calls if c["method"] == "answerCallbackQuery"]
        assert answers == ["Not allowed: loosening a risk limit needs the admin role.", "Applied.", "Already handled."]
        assert _said(t[5]) == ["✅ risk.max_order_notional: 20 → 80 (kept across restarts)"]
        assert risk.limits.max_order_notional == Decimal(80)
        # a card left alone expires and changes nothing
        t = await session.feed([u.msg(ADMIN, "/set risk.daily_loss_limit none"), {"_advance_s": 31}])
        assert _said(t[-1]) == ["⌛ Confirmation expired; nothing was changed."]
        assert risk.limits.daily_loss_limit == Decimal(100)
        t = await session.feed(
            [u.msg(OPERATOR, "/set risk.orders_per_s 99"), u.msg(OPERATOR, "/set dutch.slippage_ticks 1.5")]
        )
        assert "cannot be set at runtime" in _said(t[-2])[0] and "whole number" in _said(t[-1])[0]
        stored = await session.service.risk.store.get_state(STATE_KEY)
    assert stored == {"params": {"risk.max_order_notional": "80"}, "paused": []}
    rows = [(r.command, r.result) for r in await audit_rows(markets_db)]
    assert ("set.confirm", "forbidden") in rows and ("set.confirm", "ok") in rows and ("set.confirm", "expired") in rows


async def test_changes_are_applied_again_when_the_service_starts(markets_db: str) -> None:
    u = Updates()
    opts = LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")
    async with local_session(opts) as session:
        _with_dutch(session)
        await session.feed(
            [
                u.msg(OPERATOR, f"/strategy dutch off {BINARY}"),
                u.msg(OPERATOR, "/set dutch.slippage_ticks 3"),
                u.msg(OPERATOR, "/set risk.max_total_exposure 150"),
            ]
        )
    async with local_session(opts) as session:
        control = session.service.control
        params = {r.key: r for r in control.tuning.params()}
        assert params["dutch.slippage_ticks"].value == 3 and params["dutch.slippage_ticks"].changed
        assert session.service.risk.limits.max_total_exposure == Decimal(150)
        t = await session.feed([u.msg(VIEWER, "/params"), u.msg(OPERATOR, "/strategy")])
        assert re.search(r"dutch\.slippage_ticks +3 \* +ticks\n", _said(t[-2])[0])
        assert f"kept off across restarts: {BINARY}" in _said(t[-1])[0]
