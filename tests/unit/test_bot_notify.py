"""Push alerts: dedup with a cooldown, "recovered" when the condition clears, per-chat mute.

The notifier sends through the real Sender and a real ``telegram.Bot`` talking to the in-process
Bot API double; time is a controlled clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import Bot

from bot.fake_api import FakeBotApi
from bot.notify import Notifier
from bot.sender import Sender
from core.control.facade import Control
from core.events import Alert, AlertCleared, EventBus, Severity
from core.redact import clear_secrets, register_secret
from tests.secret_shapes import DB_PASSWORD, assert_no_secret

ADMIN_CHAT, DESK_CHAT = 1001, -100200
WALL_NOON = 1_780_000_000.0 - 1_780_000_000.0 % 86400 + 12 * 3600  # a day's 12:00 UTC


class Clock:
    def __init__(self) -> None:
        self.t = 5_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    yield FakeBotApi()


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    b = Bot("123:TEST", request=api, get_updates_request=api)
    await b.initialize()
    try:
        yield b
    finally:
        await b.shutdown()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def notifier(bot: Bot, clock: Clock) -> Notifier:
    return Notifier(
        Sender(bot, mask=Control.redact_outgoing),
        [ADMIN_CHAT, DESK_CHAT, ADMIN_CHAT],
        cooldown_s=300,
        clock=clock,
        wall=lambda: WALL_NOON,
    )


def sent(api: FakeBotApi) -> list[tuple[int | None, str | None]]:
    return [(c.chat_id, c.text) for c in api.calls if c.method == "sendMessage"]


def dead(key: str = "ws#0", message: str = "market feed connection ws#0 is dead") -> Alert:
    return Alert(kind="feed_dead", severity=Severity.CRITICAL, key=key, message=message)


async def test_an_alert_goes_to_every_chat_once_escaped(notifier: Notifier, api: FakeBotApi) -> None:
    await notifier.on_alert(Alert("book_inconsistent", Severity.WARNING, "tok", "book <Yes> & _No_ crossed"))
    assert notifier.chats == [ADMIN_CHAT, DESK_CHAT]  # duplicates in the config collapse
    text = "⚠️ <b>Book out of sync</b>\nbook &lt;Yes&gt; &amp; _No_ crossed"  # a title, never the kind
    assert sent(api) == [(ADMIN_CHAT, text), (DESK_CHAT, text)]
    assert all(c.params["parse_mode"] == "HTML" for c in api.calls)
    assert notifier.sent == 2


async def test_a_secret_in_an_alert_never_reaches_a_chat(notifier: Notifier, api: FakeBotApi) -> None:
    """Every text leaves through the facade's redaction: a configured secret that slipped into an
    alert (an exception text, a URL with a password) is masked, whatever its wording."""
    register_secret(DB_PASSWORD)
    try:
        await notifier.on_alert(Alert("db", Severity.CRITICAL, "db", f"cannot reach postgresql://u:{DB_PASSWORD}@db/x"))
    finally:
        clear_secrets()
    [(_, text), _] = sent(api)
    assert text is not None and "postgresql://u:***@db/x" in text
    assert_no_secret(text)


async def test_an_incident_is_one_message_however_long_it_lasts(
    notifier: Notifier, api: FakeBotApi, clock: Clock
) -> None:
    await notifier.on_alert(dead())
    for _ in range(10):  # past the cooldown too: a condition core clears is one incident until cleared
        clock.t += 60
        await notifier.on_alert(dead())
    assert len(sent(api)) == 2 and notifier.suppressed == 10
    # another key of the same kind is another condition: not deduplicated against the first
    await notifier.on_alert(dead(key="ws#1", message="ws#1 is dead"))
    assert sent(api)[-1] == (DESK_CHAT, "🚨 <b>Feed down</b>\nws#1 is dead")
    await notifier.on_cleared(AlertCleared(kind="feed_dead", key="ws#0", duration_s=612.4))
    assert sent(api)[-1] == (
        DESK_CHAT,
        "✅ <b>Feed back</b> after 10m12s\n(10 repeat(s) of this alert held back meanwhile)",
    )
    assert len(sent(api)) == 6


async def test_alerts_never_cleared_repeat_after_the_cooldown_with_a_count(
    notifier: Notifier, api: FakeBotApi, clock: Clock
) -> None:
    killed = Alert("kill_switch", Severity.WARNING, "risk", "kill switch by telegram:1001")
    await notifier.on_alert(killed)
    for _ in range(3):
        clock.t += 60
        await notifier.on_alert(killed)
    assert len(sent(api)) == 2 and notifier.suppressed == 3
    clock.t += 300 - 180  # 300 s after the first message
    await notifier.on_alert(killed)
    assert sent(api)[-1][1] == "⚠️ <b>Kill switch</b>\nkill switch by telegram:1001\n(again: 4× in 5m00s)"
    assert len(sent(api)) == 4


async def test_recovered_is_sent_once_when_the_condition_clears(
    notifier: Notifier, api: FakeBotApi, clock: Clock
) -> None:
    await notifier.on_cleared(AlertCleared(kind="feed_dead", key="ws#0"))
    assert sent(api) == []  # nothing was active: no "recovered" out of the blue
    await notifier.on_alert(dead())
    clock.t += 95
    await notifier.on_cleared(AlertCleared(kind="feed_dead", key="ws#0", message="connection re-established"))
    recovered = "✅ <b>Feed back</b> after 1m35s\nconnection re-established"
    assert sent(api)[-2:] == [(ADMIN_CHAT, recovered), (DESK_CHAT, recovered)]
    await notifier.on_cleared(AlertCleared(kind="feed_dead", key="ws#0"))
    assert len(sent(api)) == 4  # cleared twice, recovered once
    # after recovery the same condition alerts again immediately (no cooldown carried over)
    await notifier.on_alert(dead())
    assert len(sent(api)) == 6


async def test_mute_off_on_and_a_timed_mute_per_chat(notifier: Notifier, api: FakeBotApi, clock: Clock) -> None:
    assert notifier.mute(DESK_CHAT, None) == "Alerts off for this chat (/alerts on to resume)."
    await notifier.on_alert(dead())
    assert [chat for chat, _ in sent(api)] == [ADMIN_CHAT]  # the other chat still gets it
    clock.t += 10 * 86400
    assert notifier.is_muted(DESK_CHAT)  # "off" does not wear off
    assert notifier.state(DESK_CHAT) == "Alerts are off for this chat (/alerts on to resume)."
    assert notifier.state(77).endswith("This chat is not an alert chat: alerts go to the configured ones.")
    assert notifier.mute(DESK_CHAT, 0.0) == "Alerts on for this chat."
    await notifier.on_alert(dead(key="k2"))
    assert [chat for chat, _ in sent(api)][-2:] == [ADMIN_CHAT, DESK_CHAT]

    assert notifier.mute(ADMIN_CHAT, 3600) == "Alerts muted for 1h00m (until 13:00 UTC)."
    assert notifier.state(ADMIN_CHAT) == "Alerts are muted until 13:00 UTC (1h00m left; /alerts on to resume)."
    clock.t += 3599
    await notifier.on_alert(dead(key="k3"))
    assert [chat for chat, _ in sent(api)][-1] == DESK_CHAT and len(sent(api)) == 4
    clock.t += 1
    assert not notifier.is_muted(ADMIN_CHAT)  # the hour is over
    assert notifier.state(ADMIN_CHAT) == "Alerts are on for this chat."
    await notifier.on_alert(dead(key="k4"))
    assert [chat for chat, _ in sent(api)][-2:] == [ADMIN_CHAT, DESK_CHAT]


async def test_health_ping_goes_to_admins_and_respects_mute(notifier: Notifier, api: FakeBotApi) -> None:
    notifier.admins = [ADMIN_CHAT, 1005]
    await notifier.ping_admins("✅ healthy — paper, disarmed, 12 <frames>")
    assert sent(api) == [(ADMIN_CHAT, "✅ healthy — paper, disarmed, 12 &lt;frames&gt;"), (1005, sent(api)[1][1])]
    notifier.mute(1005, None)
    await notifier.ping_admins("again")
    assert sent(api)[-1] == (ADMIN_CHAT, "again") and len(sent(api)) == 3


async def test_the_bus_drives_the_notifier_until_detached(notifier: Notifier, api: FakeBotApi) -> None:
    bus = EventBus()
    detach = notifier.attach(bus)
    bus.publish(dead())
    bus.publish(AlertCleared(kind="feed_dead", key="ws#0"))
    await bus.drain()
    assert [text[:13] for _, text in sent(api) if text] == ["🚨 <b>Feed dow"] * 2 + ["✅ <b>Feed bac"] * 2
    detach()
    bus.publish(dead(key="other"))
    await bus.drain()
    assert len(sent(api)) == 4


async def test_a_failing_send_is_counted_not_raised(notifier: Notifier, api: FakeBotApi) -> None:
    api.throttle_next = 10  # every call answers 429 and this bare Bot has no rate limiter to retry
    await notifier.on_alert(dead())
    assert notifier.sent == 0 and notifier.sender.failed == 2
    assert [c.method for c in api.calls] == ["sendMessage!429", "sendMessage!429"]
