"""The sandbox's terminal chat, line by line: what a typed line asks for, how the bot's calls read
(buttons numbered across rows, edits, a tap's answer), which message a tap presses (the last one
with buttons; an edit that takes them away leaves nothing to tap), and what the settings files
written for the sandbox hold (secrets apart, chmod 600, loaded back as written)."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from bot.fake_api import FakeBotApi
from core.types import Mode
from polybot.sandbox import THROWAWAY_KEY, chat_settings, mode_settings
from polybot.settings_files import write_settings_files
from polybot.terminal_chat import ChatView, Entry, parse
from polybot.updates import Updates


@pytest.mark.parametrize(
    ("line", "entry"),
    [
        ("/status", Entry("text", "/status")),
        ("  /order m Yes BUY 0.4 5 ", Entry("text", "/order m Yes BUY 0.4 5")),
        ("1", Entry("tap", "1")),
        ("tap 2", Entry("tap", "2")),
        ("TAP 3", Entry("tap", "3")),
        ("1 2", Entry("text", "1 2")),
        ("hello", Entry("text", "hello")),
        ("", Entry("none")),
        ("# a comment", Entry("none")),
        (":mode live", Entry("mode", "live")),
        (":mode DRY-RUN", Entry("mode", "dry-run")),
        (":wait 2.5", Entry("wait", "2.5")),
        (":help", Entry("help")),
        (":quit", Entry("quit")),
        (":exit", Entry("quit")),
    ],
)
def test_a_line_is_a_message_a_tap_or_a_sandbox_directive(line: str, entry: Entry) -> None:
    assert parse(line) == entry


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (":mode sideways", ":mode takes one of paper, dry-run, live"),
        (":mode", ":mode takes one of"),
        (":wait -1", ":wait takes a number of seconds"),
        (":wait nan", ":wait takes a number of seconds"),
        (":wait soon", ":wait takes a number of seconds"),
        (":frobnicate", "unknown :frobnicate: try :help"),
    ],
)
def test_a_directive_the_sandbox_cannot_take_says_why(line: str, says: str) -> None:
    entry = parse(line)
    assert entry.kind == "error" and says in entry.value


def _send(api: FakeBotApi, text: str, buttons: list[list[tuple[str, str]]] | None = None) -> None:
    params: dict[str, object] = {"chat_id": 1001, "text": text}
    if buttons:
        keyboard = [[{"text": t, "callback_data": d} for t, d in row] for row in buttons]
        params["reply_markup"] = json.dumps({"inline_keyboard": keyboard})
    api.answer("sendMessage", params)


def test_the_chat_reads_as_the_person_sees_it_and_a_tap_presses_the_last_buttons() -> None:
    api, out = FakeBotApi(), io.StringIO()
    view = ChatView(api, out, chat_id=1001)
    _send(api, "<b>LIVE order</b> — confirm &amp; go", [[("Confirm", "c:n1"), ("Cancel", "x:n1")]])
    api.answer("setMyCommands", {"commands": "[]"})  # not a message: not shown
    assert view.flush() == 2
    assert out.getvalue() == "bot> LIVE order — confirm & go\n     [1 Confirm] [2 Cancel]\n"
    card = api.calls[0].sent_id
    assert card is not None
    tap = view.tap(Updates(), 1001, "1")
    assert isinstance(tap, dict)
    query = tap["callback_query"]
    assert query["data"] == "c:n1" and query["message"]["message_id"] == card and query["from"]["id"] == 1001
    assert view.tap(Updates(), 1001, "3") == "no button 3: the last buttons are numbered 1 to 2"

    api.answer("answerCallbackQuery", {"callback_query_id": "1", "text": "LIVE order open"})
    api.answer("editMessageText", {"chat_id": 1001, "message_id": card, "text": "✅ LIVE order: open"})
    view.flush()
    assert out.getvalue().endswith(
        f"bot (answers the tap)> LIVE order open\nbot (edits message {card})> ✅ LIVE order: open\n"
    )
    assert view.tap(Updates(), 1001, "1") == "no buttons to tap: the last message with buttons has none left"


def test_buttons_are_numbered_across_rows_and_an_alert_to_another_chat_says_so() -> None:
    api, out = FakeBotApi(), io.StringIO()
    view = ChatView(api, out, chat_id=1001)
    _send(api, "Open orders (2)", [[("Cancel 1", "k:a")], [("Cancel 2", "k:b")]])
    api.answer("sendMessage", {"chat_id": 7, "text": "Feed down"})
    view.flush()
    assert "[1 Cancel 1]\n" in out.getvalue() and "[2 Cancel 2]\n" in out.getvalue()
    assert "bot to chat 7> Feed down\n" in out.getvalue()
    tap = view.tap(Updates(), 1001, "2")
    assert isinstance(tap, dict) and tap["callback_query"]["data"] == "k:b"


def test_the_settings_files_keep_secrets_apart_and_load_as_written(tmp_path: Path) -> None:
    values = {
        "db__url": f"sqlite:///{tmp_path / 'x.db'}",
        "service__staleness_ms": "30000",
        "strategies__dutch__enabled": "false",
        "feed__markets": ["a-market", "b-market"],
        **chat_settings({1001: "admin"}, [1001]),
        **mode_settings(Mode.DRY_RUN),
    }
    loaded = write_settings_files(values, tmp_path, header="# main", secrets_header="# THROWAWAY")
    main, secrets = (tmp_path / "service.toml").read_text(), (tmp_path / "secrets.local.toml").read_text()
    assert THROWAWAY_KEY[2:] not in main and "token" not in main
    assert THROWAWAY_KEY in secrets and "token = " in secrets and secrets.startswith("# THROWAWAY")
    assert stat.S_IMODE((tmp_path / "secrets.local.toml").stat().st_mode) == 0o600
    assert "staleness_ms = 30000\n" in main and "[strategies.dutch]\nenabled = false\n" in main
    s = loaded.settings
    assert s.mode is Mode.DRY_RUN and s.relayer.dry_run and s.service.staleness_ms == 30000
    assert s.feed.markets == ["a-market", "b-market"] and [u.id for u in s.telegram.users] == [1001]
    assert loaded.sources["relayer.private_key"].startswith("secrets:")
