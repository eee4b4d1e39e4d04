"""Alerts a person reads, through the real service and bot (offline runner, Bot API double):
human titles, markets by slug and outcome, one message per incident, a recovery with the outage's
length, and ``/alerts`` alone showing this chat's state."""

from __future__ import annotations

from decimal import Decimal

from bot.offline import format_transcript
from core.app.alerts import FeedDeadAlerts
from core.events import OrderEvent
from core.execution.types import OrderStatus
from core.feed.connection import ConnectionEvent, ConnectionState
from polybot.cli.tools.tgbot_cmd import LocalOptions, local_session
from polybot.updates import Updates

BINARY = "demo-btc-above-150k-2026"
ADMIN = 1001
S = 1_000_000_000


def _dead(at_s: float, state: ConnectionState = ConnectionState.DEAD) -> ConnectionEvent:
    return ConnectionEvent(conn_id=0, state=state, asset_ids=("a",), reason="no frames", at_ns=int(at_s * S))


async def test_an_outage_is_one_message_and_one_recovery_with_its_length(markets_db: str) -> None:
    async with local_session(LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")) as session:
        alert_chats = session.service.settings.telegram.alert_chats
        assert ADMIN in alert_chats
        before = len(session.api.calls)
        feed = FeedDeadAlerts(session.service.bus)
        feed.on_connection_event(_dead(1000), last_heard_ns=int(990 * S))
        feed.on_connection_event(_dead(1010), last_heard_ns=int(990 * S))  # still down: the same incident
        feed.on_connection_event(_dead(1085, ConnectionState.RECONNECTED), last_heard_ns=None)
        t = await session.feed([{"_advance_s": 1}])
        texts = [c["text"] for c in t[-1].calls if c.get("chat_id") == ADMIN]
        assert len(session.api.calls) - before == 2 * len(alert_chats)
        assert texts[0].startswith("🚨 <b>Feed down</b>\nmarket feed connection ws#0 is dead")
        assert "feed_dead" not in texts[0]
        assert texts[1] == (
            "✅ <b>Feed back</b> after 1m35s\nconnection re-established\n"
            "(1 repeat(s) of this alert held back meanwhile)"
        )
        print(format_transcript(t[-1:]))


async def test_a_failed_order_names_its_market_and_outcome(markets_db: str) -> None:
    async with local_session(LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")) as session:
        market = session.service.registry.resolve(BINARY)
        token = market.token("Yes").token_id
        session.service.bus.publish(
            OrderEvent(
                "pb-1234abcd",
                OrderStatus.FAILED,
                market=market.condition_id,
                token_id=token,
                side="BUY",
                price=Decimal("0.450"),
                size=Decimal("10.00"),
                reason_code="network",
            )
        )
        t = await session.feed([{"_advance_s": 1}])
        text = next(c["text"] for c in t[-1].calls if c.get("chat_id") == ADMIN)
        assert text == f"⚠️ <b>Order failed</b>\n{BINARY} Yes BUY 10 @ 0.45 (order pb-1234abcd) failed: network"
        assert token[:8] not in text


async def test_alerts_alone_shows_this_chats_state(markets_db: str) -> None:
    u = Updates()
    script = [
        u.msg(ADMIN, "/alerts"),
        u.msg(ADMIN, "/alerts mute 1h"),
        u.msg(ADMIN, "/alerts"),
        {"_advance_s": 1800},
        u.msg(ADMIN, "/alerts"),
        u.msg(ADMIN, "/alerts off"),
        u.msg(ADMIN, "/alerts"),
        u.msg(ADMIN, "/alerts on"),
        u.msg(ADMIN, "/alerts"),
    ]
    async with local_session(LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")) as session:
        t = await session.feed(script)
    said = [c["text"] for e in t for c in e.calls if c["method"] == "sendMessage"]
    assert said[0] == "Alerts are on for this chat."
    assert said[1].startswith("Alerts muted for 1h00m (until ") and said[1].endswith(" UTC).")
    assert said[2].startswith("Alerts are muted until ") and "(1h00m left; /alerts on to resume)" in said[2]
    assert "(30m00s left;" in said[3]
    assert said[5] == "Alerts are off for this chat (/alerts on to resume)."
    assert said[7] == "Alerts are on for this chat."
