"""The bot needs only what core.control.frontend.FrontEndHost names: no service behind it here.

A host made of plain objects (a facade with no transport, a bus, the [telegram] settings, a Bot
API double and a clock) is enough to start the bot, replay the alerts published before it
started, answer a command and stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr

from bot.app import OFFLINE_TOKEN, TelegramFrontEnd, start_telegram
from bot.fake_api import FakeBotApi
from bot.offline import ManualClock, OfflineRunner
from core.control.facade import Control
from core.events import Alert, EventBus, Severity
from core.redact import clear_secrets, register_secret
from tests.secret_shapes import DB_PASSWORD, assert_no_secret

ADMIN, VIEWER = 1001, 1002


@dataclass
class User:
    id: int
    role: str


@dataclass
class Telegram:
    token: SecretStr | None = None
    base_url: str = "https://api.telegram.org/bot"
    users: list[User] = field(default_factory=lambda: [User(ADMIN, "admin"), User(VIEWER, "viewer")])
    alert_chats: list[int] = field(default_factory=lambda: [ADMIN])
    confirm_ttl_s: float = 30.0
    commands_per_minute: int = 30


@dataclass
class Settings:
    telegram: Telegram = field(default_factory=Telegram)


@dataclass
class Options:
    bot_request: object = field(default_factory=FakeBotApi)
    bot_clock: ManualClock = field(default_factory=ManualClock)


@dataclass
class Host:
    control: Control = field(default_factory=Control)
    bus: EventBus = field(default_factory=EventBus)
    settings: Settings = field(default_factory=Settings)
    opts: Options = field(default_factory=Options)
    startup_alerts: list[Alert] = field(default_factory=list)


def message(user: int, text: str) -> dict[str, object]:
    return {
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "t"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        }
    }


async def test_a_host_of_plain_parts_runs_the_bot() -> None:
    startup = Alert(
        kind="armed_at_shutdown", severity=Severity.WARNING, key="risk", message="was armed; starts disarmed"
    )
    host = Host(startup_alerts=[startup])
    api = host.opts.bot_request
    assert isinstance(api, FakeBotApi)
    front_end = TelegramFrontEnd()
    with pytest.raises(RuntimeError, match="has not been started"):
        _ = front_end.parts
    parts = await front_end(host)
    try:
        assert parts is front_end.parts
        assert parts.app.bot.token == OFFLINE_TOKEN  # no token configured: a bot that never reaches Telegram
        replayed = [(c.chat_id, c.text or "") for c in api.calls if c.method == "sendMessage"]
        assert len(replayed) == 1 and replayed[0][0] == ADMIN and "was armed; starts disarmed" in replayed[0][1]
        runner = OfflineRunner(parts, api, host.opts.bot_clock)
        [entry] = await runner.feed([message(VIEWER, "/help")])
        [reply] = [c for c in entry.calls if c["method"] == "sendMessage"]
        assert reply["chat_id"] == VIEWER and "your role: <b>viewer</b>" in reply["text"]
        [refused] = [c for c in (await runner.feed([message(VIEWER, "/status")]))[-1].calls if c.get("text")]
        assert "needs the running service" in refused["text"]  # a facade with no transport says so
    finally:
        await parts.stop()


async def test_what_the_bot_sends_is_redacted_by_the_facade() -> None:
    register_secret(DB_PASSWORD)
    try:
        leak = Alert(kind="db", severity=Severity.CRITICAL, key="db", message=f"bad url u:{DB_PASSWORD}@db")
        host = Host(startup_alerts=[leak])
        parts = await start_telegram(host)
        await parts.stop()
    finally:
        clear_secrets()
    api = host.opts.bot_request
    assert isinstance(api, FakeBotApi)
    [text] = [c.text or "" for c in api.calls if c.method == "sendMessage"]
    assert "bad url u:***@db" in text
    assert_no_secret(text)


async def test_a_bot_request_that_is_not_a_bot_api_transport_is_refused() -> None:
    host = Host(opts=Options(bot_request="http://not-a-transport"))
    with pytest.raises(TypeError, match="must be a telegram BaseRequest, not str"):
        await start_telegram(host)
