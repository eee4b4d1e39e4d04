"""The Telegram surface of a running live-mode Service, attacked (docs/security.md).

A real Service (live relayer against the CLOB double, real SQLite, the bot on the in-process Bot
API double) is driven with crafted updates: strangers and group chats on every update type,
confirmation replays and taps by other users, HTML injection and out-of-range arguments, a
command flood. Real-looking secrets are configured, every command is run, and every Bot API
call, log record and audit row is searched for them.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from core.events import Alert
from tests.faults.fault_harness import (
    BINARY,
    BOT_TOKEN,
    TEST_PRIVATE_KEY,
    TRADER,
    VIEWER,
    Rig,
    query,
    running_service,
)

STRANGER = 6666
OPERATOR = 1003
USERS = [{"id": TRADER, "role": "admin"}, {"id": VIEWER, "role": "viewer"}, {"id": OPERATOR, "role": "operator"}]
# Telegram's HTML parse mode accepts only these tags; anything else is an injection or a bug.
ALLOWED_TAG = re.compile(
    r"</?(b|strong|i|em|u|ins|s|strike|del|code|pre|tg-spoiler|blockquote)>|<a href=\"[^\"<>]*\">|</a>"
)


def _env(**extra: Any) -> dict[str, Any]:
    return {"telegram__users": USERS, **extra}


def _texts(rig: Rig) -> list[str]:
    return [c.text or "" for c in rig.api.calls if c.text]


def _answers(rig: Rig, start: int = 0) -> list[str]:
    return [str(c.params.get("text") or "") for c in rig.api.calls[start:] if c.method == "answerCallbackQuery"]


async def _audit(rig: Rig) -> list[tuple[str, str, str]]:
    await rig.service.bus.drain()
    # audit rows go through the batched writer: wait until they are committed, not for luck
    await rig.service.writer.flush(timeout_s=30)
    rows = await query(rig.db_url, "SELECT user_id, command, result FROM command_audit ORDER BY id")
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def _valid_telegram_html(text: str) -> bool:
    stripped = ALLOWED_TAG.sub("", text)
    return "<" not in stripped and ">" not in stripped


async def test_strangers_and_groups_are_denied_for_every_update_type(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, env=_env()) as rig:
        await rig.wait_books_ok(within_s=30)
        # Alerts off for the alert chat (the admin's): a busy machine can make the feed late and
        # push a legitimate alert there, which is not a reply to a hostile update.
        rig.service.bot.notifier.mute(TRADER, None)
        u = rig.updates
        start = len(rig.api.calls)
        channel_post = {
            "update_id": 9001,
            "channel_post": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": -1009, "type": "channel", "title": "c"},
                "text": "/arm",
                "entities": [{"type": "bot_command", "offset": 0, "length": 4}],
            },
        }
        added_to_group = {
            "update_id": 9002,
            "my_chat_member": {
                "chat": {"id": -1010, "type": "group", "title": "g"},
                "from": u.user(STRANGER),
                "date": 1,
                "old_chat_member": {"user": {"id": 4242, "is_bot": True, "first_name": "Polybot"}, "status": "left"},
                "new_chat_member": {"user": {"id": 4242, "is_bot": True, "first_name": "Polybot"}, "status": "member"},
            },
        }
        hostile = [
            u.msg(STRANGER, "/arm"),
            u.msg(STRANGER, "/status"),
            u.msg(STRANGER, "hello"),
            u.msg(STRANGER, "/kill", edited=True),
            u.tap(STRANGER, "c:AAAAAAAAAAAA"),
            u.tap(STRANGER, "x:AAAAAAAAAAAA"),
            u.inline(STRANGER, "status"),
            u.msg(TRADER, "/arm", chat_type="group", chat_id=-100123),  # an admin, but in a group
            u.msg(TRADER, "/kill", chat_type="supergroup", chat_id=-100124),
            u.msg(STRANGER, "/order demo Yes BUY 0.5 10", chat_type="group", chat_id=-100123),
            channel_post,
            added_to_group,
        ]
        await rig.telegram_feed(hostile)
        calls = rig.api.calls[start:]
        audit = await _audit(rig)
        assert not rig.service.risk.armed
        assert rig.posts() == 0
        sent = [c for c in calls if c.method == "sendMessage"]
        # one neutral line to the stranger's private chat, nothing else, nothing to any group
        assert [(c.chat_id, c.text) for c in sent] == [(STRANGER, "This bot is private.")]
        assert [c.method for c in calls if c.method != "sendMessage"] == ["answerCallbackQuery"] * 2
        assert all(not c.params.get("text") for c in calls if c.method == "answerCallbackQuery")
        denied = [a for a in audit if a[2] == "denied"]
        assert len(denied) == len(hostile), audit
        assert all(a[2] == "denied" for a in audit)


async def test_an_edited_command_is_never_run(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing an old message into a command does not run it, even for an admin."""
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, env=_env()) as rig:
        await rig.wait_books_ok(within_s=30)
        start = len(rig.api.calls)
        await rig.telegram_feed([rig.updates.msg(TRADER, "/arm", edited=True)])
        await rig.telegram_feed([rig.updates.msg(TRADER, f"/order {BINARY} Yes BUY 0.20 10", edited=True)])
        assert not rig.service.risk.armed
        replies = [c.text for c in rig.api.calls[start:] if c.method == "sendMessage"]
        assert replies and all(r and "edited command is not run" in r for r in replies)
        assert not [a for a in await _audit(rig) if a[1] in ("arm", "order") and a[2] == "ok"]


async def test_confirmation_cannot_be_replayed_or_taken_by_another_user(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, env=_env()) as rig:
        await rig.wait_books_ok(within_s=30)
        u = rig.updates
        await rig.telegram_feed([u.msg(TRADER, "/arm")])
        assert rig.service.risk.armed
        await rig.telegram_feed([u.msg(TRADER, f"/order {BINARY} Yes BUY 0.20 10")])
        card = [c for c in rig.api.calls if c.buttons]
        assert card and "LIVE order" in (card[-1].text or "")
        nonce = card[-1].buttons[0][0]["callback_data"][2:]
        # a guess one character off (the nonce may itself end in "X": token_urlsafe's alphabet)
        guessed = nonce[:-1] + ("Y" if nonce.endswith("X") else "X")
        start = len(rig.api.calls)
        await rig.telegram_feed(
            [
                u.tap(VIEWER, f"c:{nonce}"),  # a viewer
                u.tap(OPERATOR, f"c:{nonce}"),  # another operator
                u.tap(STRANGER, f"c:{nonce}"),  # a stranger who saw the nonce
                u.tap(TRADER, f"c:{guessed}"),  # a guessed nonce
            ]
        )
        assert rig.posts() == 0, "nothing may be sent before the owner confirms"
        await rig.telegram_feed([u.tap(TRADER, f"c:{nonce}"), u.tap(TRADER, f"c:{nonce}"), u.tap(TRADER, f"x:{nonce}")])
        answers = _answers(rig, start)
        assert answers == [
            "Not allowed.",
            "This confirmation belongs to another user.",
            "",
            "Already handled.",
            "LIVE order open (resting on the book)",  # what happened, not "Sending…"
            "Already handled.",
            "Already handled.",
        ]
        assert rig.posts() == 1, "one confirmation, one order"
        # cancel, then confirm: nothing goes out; an expired card cannot be confirmed
        await rig.telegram_feed([u.msg(TRADER, f"/order {BINARY} Yes BUY 0.21 10")])
        await rig.telegram_feed([u.tap(TRADER, "x:$LAST_NONCE"), u.tap(TRADER, "c:$LAST_NONCE")])
        await rig.telegram_feed([u.msg(TRADER, f"/order {BINARY} Yes BUY 0.22 10"), {"_advance_s": 31}])
        await rig.telegram_feed([u.tap(TRADER, "c:$LAST_NONCE")])
        assert rig.posts() == 1
        audit = await _audit(rig)
        results = [r for _, c, r in audit if c.startswith("order.")]
        assert results.count("ok") == 1
        assert {"forbidden", "wrong_user", "already_used", "cancelled", "expired"} <= set(results)


INJECTIONS = [
    "/quotes <b>x</b>",
    "/markets <script>alert(1)</script>",
    "/order <i>mkt</i> Yes BUY 0.5 10",
    f"/order {BINARY} <b>Yes</b> BUY 0.5 10",
    f"/order {BINARY} Yes <u>BUY</u> 0.5 10",
    '/cancel <a href="http://evil">x</a>',
    "/alerts <b>mute</b>",
    "/alerts mute <i>1h</i>",
    "/status <pre>",
    "/nosuchcommand<b>x</b>",
]
NOT_PLAIN = "must be a plain decimal number"
BAD_NUMBERS = [
    ("-10", "size must be > 0"),
    ("0", "size must be > 0"),
    ("1e9", NOT_PLAIN),
    ("99999999999999999999999999", "size must be > 0"),
    ("NaN", NOT_PLAIN),
    ("Infinity", NOT_PLAIN),
    ("1_0", NOT_PLAIN),  # Decimal() reads 10
    ("١٠", NOT_PLAIN),  # Arabic-Indic digits: Decimal() reads 10
    ("１０", NOT_PLAIN),  # fullwidth digits
    ("10.001", "at most 2 decimals"),
    ("2", "below this market's minimum"),
]
BAD_PRICES = [
    ("0", "price must be within"),
    ("1", "price must be within"),
    ("-0.5", "price must be within"),
    ("1.5", "price must be within"),
    ("0.205", "not on this market's tick"),
    ("NaN", NOT_PLAIN),
    ("-Infinity", NOT_PLAIN),
    ("abc", NOT_PLAIN),
    ("٠.٢", NOT_PLAIN),  # 0.2 in Arabic-Indic digits, on the tick: Decimal() would have traded it
    ("０.２", NOT_PLAIN),
    ("2e-1", NOT_PLAIN),
]


async def test_arguments_are_validated_and_escaped(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(telegram__commands_per_minute="1000")  # more cases than the default 30 a minute
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, env=env) as rig:
        await rig.wait_books_ok(within_s=30)
        u = rig.updates
        await rig.telegram_feed([u.msg(TRADER, "/arm")])
        for text in INJECTIONS:
            start = len(rig.api.calls)
            await rig.telegram_feed([u.msg(TRADER, text)])
            replies = [c.text or "" for c in rig.api.calls[start:] if c.method == "sendMessage"]
            assert replies, f"no answer to {text!r}"
            for reply in replies:
                assert _valid_telegram_html(reply), f"{text!r} produced unescaped HTML: {reply!r}"
        for size, why in BAD_NUMBERS:
            start = len(rig.api.calls)
            await rig.telegram_feed([u.msg(TRADER, f"/order {BINARY} Yes BUY 0.20 {size}")])
            reply = html.unescape(" ".join(c.text or "" for c in rig.api.calls[start:]))
            assert why in reply, (size, reply)
        for price, why in BAD_PRICES:
            start = len(rig.api.calls)
            await rig.telegram_feed([u.msg(TRADER, f"/order {BINARY} Yes BUY {price} 10")])
            reply = html.unescape(" ".join(c.text or "" for c in rig.api.calls[start:]))
            assert why in reply, (price, reply)
        assert rig.posts() == 0
        assert not [c for c in rig.api.calls if c.buttons], "no invalid order may reach a confirmation card"
        rows = await query(rig.db_url, "SELECT count(*) FROM orders")
        assert rows[0][0] == 0


async def test_commands_are_rate_limited_per_user_but_never_the_safe_direction(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(telegram__commands_per_minute="5")
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, env=env) as rig:
        await rig.wait_books_ok(within_s=30)
        rig.service.bot.notifier.mute(TRADER, None)  # only replies to the trader's commands are counted
        u = rig.updates
        await rig.telegram_feed([u.msg(TRADER, "/arm")])
        assert rig.service.risk.armed
        start = len(rig.api.calls)
        await rig.telegram_feed([u.msg(TRADER, "/status") for _ in range(7)])  # 4 fit, 3 are over
        replies = [c.text or "" for c in rig.api.calls[start:] if c.chat_id == TRADER and c.method == "sendMessage"]
        assert len([r for r in replies if "<b>Polybot</b>" in r]) == 4
        limited = [r for r in replies if r.startswith("Too many commands")]
        assert len(limited) == 1, "one slow-down reply, not one per refused command"
        assert re.search(r"Wait \d+ s\.", limited[0]) and "/disarm and /kill are never limited" in limited[0]
        # over the limit, the trader can still stop trading
        await rig.telegram_feed([u.msg(TRADER, "/disarm")])
        assert not rig.service.risk.armed
        await rig.telegram_feed([u.msg(TRADER, "/kill")])
        replies = [c.text or "" for c in rig.api.calls[start:] if c.chat_id == TRADER and c.method == "sendMessage"]
        assert replies[-2:] == ["🛑 disarmed: no new orders will be placed", "🛑 killed: disarmed, 0 order(s) canceled"]
        await rig.telegram_feed([u.msg(VIEWER, "/status")])
        assert any("<b>Polybot</b>" in (c.text or "") for c in rig.api.calls if c.chat_id == VIEWER)
        audit = await _audit(rig)
        trader = [(c, r) for uid, c, r in audit if uid == str(TRADER)]
        assert [r for _, r in trader].count("rate_limited") == 3, "every refused command is on record"
        assert trader[-2:] == [("disarm", "ok"), ("kill", "ok")]


@pytest.fixture
def product_logging() -> Iterator[io.StringIO]:
    """Polybot's own logging setup at DEBUG (what run-service installs), written to a buffer."""
    from core.logsetup import setup_logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    out = io.StringIO()
    setup_logging("DEBUG", stream=out)
    yield out
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


async def test_no_command_reveals_a_secret(
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    product_logging: io.StringIO,
) -> None:
    caplog.set_level("DEBUG")
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, env=_env()) as rig:
        # the real credentials of the CLOB double, plus a bogus secret the venue never sees
        relayer = rig.service.relayer
        secrets = {
            "private key": TEST_PRIVATE_KEY[2:].lower(),
            "api secret": rig.service.settings.relayer.api_secret.get_secret_value(),
            "api passphrase": rig.service.settings.relayer.api_passphrase.get_secret_value(),
            "bot token": BOT_TOKEN,
            "token secret half": BOT_TOKEN.split(":", 1)[1],
        }
        await rig.wait_books_ok(within_s=30)
        u = rig.updates
        every = [
            "/start",
            "/help",
            "/status",
            "/quotes",
            f"/quotes {BINARY}",
            "/markets",
            "/markets btc",
            "/preflight",
            "/arm",
            f"/order {BINARY} Yes BUY 0.20 10",
        ]
        await rig.telegram_feed([u.msg(TRADER, t) for t in every])
        await rig.telegram_feed([u.tap(TRADER, "c:$LAST_NONCE")])
        orders = await rig.service.control.orders()
        more = [
            "/orders",
            f"/cancel {orders[0].client_order_id}" if orders else "/cancel x",
            "/cancel nosuchorder",
            "/cancelall",
            "/positions",
            "/pnl",
            "/health",
            "/alerts mute 1h",
            "/alerts on",
            "/alerts off",
            "/disarm",
            "/kill",
            "/config",
            "/help me",
        ]
        await rig.telegram_feed([u.msg(TRADER, t) for t in more])
        await rig.service.bus.drain()
        assert relayer.address.lower() not in secrets["private key"]
        bot_text = "\n".join(json.dumps(c.params, default=str) for c in rig.api.calls)
        log_text = product_logging.getvalue() + "\n".join(
            r.getMessage() + (r.exc_text or "") + str(getattr(r, "stack_info", "") or "") for r in caplog.records
        )
        assert "Bot API" in log_text  # PTB's DEBUG lines (they carry the bot URL) were written
        tables = ["command_audit", "exec_audit", "alerts", "state"]
        dumps = []
        for table in tables:
            dumps.append(json.dumps([list(map(str, r)) for r in await query(rig.db_url, f"SELECT * FROM {table}")]))
        db_text = "\n".join(dumps)
        alerts_text = "\n".join(a.message for a in rig.events if isinstance(a, Alert))
        assert len(rig.api.calls) > 20 and len(caplog.records) > 10
        for name, value in secrets.items():
            for where, text in (
                ("Bot API", bot_text),
                ("logs", log_text),
                ("database", db_text),
                ("alerts", alerts_text),
            ):
                assert value.lower() not in text.lower(), f"the {name} appears in {where}"
        # what an operator does see: the public address, never the key
        assert relayer.address in bot_text or relayer.address.lower() in bot_text.lower()


async def test_a_secret_typed_as_an_argument_is_not_echoed(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_service(sqlite_url, monkeypatch, feed="demo", rate_hz=50.0, live=True, env=_env()) as rig:
        secret = rig.service.settings.relayer.api_secret.get_secret_value()
        u = rig.updates
        await rig.telegram_feed(
            [
                u.msg(TRADER, f"/order {TEST_PRIVATE_KEY} Yes BUY 0.2 10"),
                u.msg(TRADER, f"/quotes {secret}"),
            ]
        )
        audit = json.dumps([list(map(str, r)) for r in await query(rig.db_url, "SELECT * FROM command_audit")])
        assert TEST_PRIVATE_KEY[2:] not in audit and secret not in audit
        bot_text = "\n".join(json.dumps(c.params, default=str) for c in rig.api.calls)
        assert TEST_PRIVATE_KEY[2:] not in bot_text
        assert secret not in bot_text
