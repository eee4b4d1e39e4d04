"""`polybot tgbot-run-local` end to end: a database filled by `polybot refresh-markets` against
the Gamma double, then update files from fixtures/updates run through the real bot — text
transcript, --json, a live-mode file against the CLOB double, and the usage errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from bot.fake_api import DEFAULT_USERNAME
from core.markets import parse_markets
from core.sim.mock_clob import MockClobServer
from core.sim.mock_gamma import MockGammaServer, load_markets_file
from core.sim.mock_ws import MockMarketServer
from polybot.cli.main import main
from polybot.sandbox import Exchange, list_markets
from tests.conftest import PROJECT_FIXTURES, REPO_ROOT
from tests.loop_thread import LoopThread
from tests.procs import console_script, run

UPDATES = PROJECT_FIXTURES / "updates"
BINARY = "demo-btc-above-150k-2026"
KEY = "0x" + "7c" * 32  # throwaway: only the local CLOB double sees it


class Doubles:
    """The exchange doubles (:class:`polybot.sandbox.Exchange`) on a background loop, so the
    synchronous CLI can use them; the CLOB double lists the Gamma fixture's markets."""

    def __init__(self) -> None:
        self.gamma = MockGammaServer()
        self.clob = MockClobServer(confirm_delay_s=0.05)
        self.ws = MockMarketServer()
        self._exchange = Exchange(self.gamma, self.clob, self.ws)
        self._loop = LoopThread()
        try:
            self._loop.call(self._exchange.start())
        except BaseException:
            self._loop.close()
            raise
        parsed, _ = parse_markets(load_markets_file(PROJECT_FIXTURES / "gamma" / "markets.json"))
        list_markets(self.clob, (gm.info for gm in parsed))

    def close(self) -> None:
        try:
            self._loop.call(self._exchange.stop())
        finally:
            self._loop.close()


@pytest.fixture(scope="module")
def doubles() -> Iterator[Doubles]:
    d = Doubles()
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def db_with_markets(doubles: Doubles, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """What the --help tells a user to do first: refresh-markets against (mock) Gamma."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    assert main(["refresh-markets", doubles.gamma.url, "--db-url", url, "--migrate"]) == 0
    assert "9 inserted" in capsys.readouterr().out
    return url


def test_help_documents_users_placeholders_and_the_market_prerequisite(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tgbot-run-local", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for needle in ("1001 admin, 1002 viewer, 1003 operator", "polybot refresh-markets", "$MARKET", "_advance_s",
                   "$LAST_NONCE", "--replay", "--json", "example:", "--bot-username", "exit status 2",
                   "/disarm and /kill", f"(default {DEFAULT_USERNAME})", f"@{DEFAULT_USERNAME} (--bot-username"):  # fmt: skip
        assert needle in " ".join(out.split()), needle


def test_commands_file_prints_the_transcript(db_with_markets: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["tgbot-run-local", str(UPDATES / "commands.jsonl"), BINARY, "Yes", "--db-url", db_with_markets])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = captured.out.splitlines()
    assert out[0] == ">> user 1001: /start" and out[1] == "<< sendMessage chat=1001"
    assert ">> user 1001: /order demo-btc-above-150k-2026 Yes BUY 0.30 10" in out
    assert "   ✅ armed (paper mode)" in out
    assert "   🛑 killed: disarmed, 0 order(s) canceled" in out
    assert sum(line.startswith(">> ") for line in out) == 26
    assert "26 update(s), paper mode, 1503 frame(s) replayed" in captured.err


def test_json_lists_every_bot_api_call(db_with_markets: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(UPDATES / "unauthorised.jsonl"), BINARY, "Yes", "--db-url", db_with_markets, "--json"]
    assert main(["tgbot-run-local", *args]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "paper" and doc["updates"] == 10 and doc["errors"] == []
    assert doc["frames_replayed"] == 1503 and doc["replay"].endswith("demo_feed.jsonl")
    calls = [call for entry in doc["transcript"] for call in entry["out"]]
    assert calls == [
        {"method": "sendMessage", "chat_id": 6666, "text": "This bot is private."},
        {"method": "answerCallbackQuery"},
        {"method": "answerInlineQuery"},
    ]
    assert doc["transcript"][4]["in"] == {"user": 6666, "button": "c:AAAAAAAAAAAA"}
    menus = [c for c in doc["startup_calls"] if c["method"] in ("deleteMyCommands", "setMyCommands")]
    assert [c["scope"].get("chat_id") for c in menus] == [None, 1001, 1002, 1003]  # each user's own menu
    started = next(c for c in doc["startup_calls"] if c["method"] == "sendMessage")
    assert started["text"].startswith("ℹ️ <b>Polybot</b>\nPolybot started in paper mode")
    # calls after the last update (the service's stop notice, when the notifier lets it through)
    assert all(c["method"] == "sendMessage" and c["chat_id"] == 1001 for c in doc["shutdown_calls"])


def test_live_file_confirms_against_the_clob_double(
    doubles: Doubles, db_with_markets: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = doubles.clob.creds_for(Account.from_key(KEY).address)
    config = tmp_path / "live.toml"
    config.write_text(
        f'[feed]\nws_url = "{doubles.ws.url}"\nuser_ws_url = "{doubles.clob.ws_url}"\n'
        f'[clob]\nurl = "{doubles.clob.url}"\n[data_api]\nurl = "{doubles.clob.url}"\n'
        f'[relayer]\ntype = "real"\ndry_run = false\n'
    )
    secrets = tmp_path / "secrets.local.toml"  # live mode's preflight fails while a secret is in the main file
    secrets.write_text(
        f'[relayer]\nprivate_key = "{KEY}"\n'
        f'api_key = "{creds.api_key}"\napi_secret = "{creds.secret}"\napi_passphrase = "{creds.passphrase}"\n'
    )
    secrets.chmod(0o600)
    before = len(doubles.clob.requests_to("POST", "/order"))
    args = [str(UPDATES / "live_confirm_accepted.jsonl"), BINARY, "Yes", "--db-url", db_with_markets]
    assert main(["tgbot-run-local", *args, "--config", str(config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "live"
    card = doc["transcript"][1]["out"][0]
    assert card["text"].startswith("<b>⚠️ LIVE order — confirm</b>")
    confirm, cancel = card["buttons"][0]
    assert (confirm["text"], cancel["text"]) == ("Confirm", "Cancel")
    assert len(confirm["callback_data"].encode()) <= 64 and confirm["callback_data"].startswith("c:")
    tap = doc["transcript"][2]
    assert tap["in"]["button"] == confirm["callback_data"]  # $LAST_NONCE became the card's nonce
    assert tap["out"][0] == {"method": "answerCallbackQuery", "text": "LIVE order open (resting on the book)"}
    assert tap["out"][1]["text"].startswith("✅ <b>LIVE</b> order: open (resting on the book)\n<b>BUY ")
    assert len(doubles.clob.requests_to("POST", "/order")) == before + 1
    # the secrets in the config never reach the output
    raw = json.dumps(doc)
    assert KEY[2:] not in raw and creds.secret not in raw and creds.passphrase not in raw


def test_usage_errors(db_with_markets: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = str(UPDATES / "commands.jsonl")
    assert main(["tgbot-run-local", commands, "--db-url", db_with_markets]) == 2
    assert "the updates use $MARKET: give MARKET and OUTCOME" in capsys.readouterr().err
    assert main(["tgbot-run-local", commands, BINARY, "--db-url", db_with_markets]) == 2
    assert "give both MARKET and OUTCOME" in capsys.readouterr().err
    assert main(["tgbot-run-local", commands, "nope-market", "Yes", "--db-url", db_with_markets]) == 2
    assert "MARKET: unknown market 'nope-market'" in capsys.readouterr().err
    assert main(["tgbot-run-local", str(tmp_path / "missing.jsonl"), "--db-url", db_with_markets]) == 2
    assert "updates file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_comment": "ok"}\nnot json\n')
    assert main(["tgbot-run-local", str(bad), "--db-url", db_with_markets]) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err
    assert main(["tgbot-run-local", commands, BINARY, "Yes", "--db-url", db_with_markets, "--bot-username", "x"]) == 2
    assert "--bot-username must be a Telegram bot username" in capsys.readouterr().err
    remote = tmp_path / "remote.toml"
    remote.write_text(f'[relayer]\ntype = "real"\ndry_run = false\nprivate_key = "{KEY}"\n')
    assert main(["tgbot-run-local", commands, BINARY, "Yes", "--db-url", db_with_markets, "--config", str(remote)]) == 2
    err = capsys.readouterr().err
    assert "never leaves the machine" in err and "clob.url = https://clob.polymarket.com" in err
    assert KEY[2:] not in err


def _message(update_id: object, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {"message_id": 1, "date": 1793000001, "chat": {"id": 1001, "type": "private"},
                    "from": {"id": 1001, "is_bot": False, "first_name": "Ada"}, "text": text},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (_message("x", "/arm"), "update_id: input should be a valid integer, got 'x'"),
        (_message(True, "/arm"), "update_id: input should be a valid integer, got true"),
        ({"message": {**_message(3, "/arm")["message"], "chat": {"id": "me", "type": "private"}}},
         "message.chat.id: input should be a valid integer, got 'me'"),
        ({"message": {"text": "/arm"}}, "message.message_id: field required"),
        ({"callback_query": {"id": "1", "from": {"id": 1001, "is_bot": False, "first_name": "A"}, "data": "c:x"}},
         "callback_query.chat_instance: field required"),
        ({"mesage": _message(3, "/arm")["message"]}, "unknown field 'mesage'"),
        ({"_advance_s": "soon"}, "_advance_s must be a number of seconds >= 0, got 'soon'"),
        ({"_wait": 3}, "unknown directive '_wait'"),
    ],
)  # fmt: skip
def test_a_bad_update_line_is_named_and_nothing_runs(
    db_with_markets: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: dict[str, Any], problem: str
) -> None:
    """Checked before the service starts: exit 2, FILE:LINE: field, and the /arm on line 1 never ran."""
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps(_message(1, "/arm")) + "\n\n" + json.dumps(line) + "\n")
    assert main(["tgbot-run-local", str(script), "--db-url", db_with_markets]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err == f"polybot tgbot-run-local: {script}:3: {problem}" or err.startswith(
        f"polybot tgbot-run-local: {script}:3: {problem} ("
    ), err
    assert "\n" not in err and "Traceback" not in err
    rows = asyncio.run(_audit_count(db_with_markets))
    assert rows == 0, "nothing was run: no command reached the bot"


async def _audit_count(db_url: str) -> int:
    from sqlalchemy import text

    from core.store.db import create_engine

    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM command_audit"))).scalar_one())
    finally:
        await engine.dispose()


def test_bot_username_decides_which_suffix_runs(
    db_with_markets: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "suffix.jsonl"
    script.write_text(json.dumps(_message(1, "/pnl@polybot_bot")) + "\n")
    args = ["tgbot-run-local", str(script), "--db-url", db_with_markets, "--no-replay", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bot_username"] == "polybot_local_bot"
    (reply,) = doc["transcript"][0]["out"]
    assert reply["text"].startswith("/pnl@polybot_bot is for @polybot_bot, not for me (@polybot_local_bot)")
    assert main([*args, "--bot-username", "@polybot_bot"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bot_username"] == "polybot_bot"
    assert doc["transcript"][0]["out"][0]["text"].startswith("<b>PnL</b>")


def test_not_migrated_database_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["tgbot-run-local", str(UPDATES / "unauthorised.jsonl"), "--db-url", url]) == 1
    assert "has no schema: run polybot migrate --apply first" in capsys.readouterr().err


def test_the_console_script_runs_a_file(db_with_markets: str) -> None:
    proc = run(
        [console_script("polybot"), "tgbot-run-local", str(UPDATES / "roles.jsonl"), BINARY, "Yes",
         "--db-url", db_with_markets],
        cwd=REPO_ROOT, text=True, timeout_s=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "   /arm needs the operator role." in proc.stdout.splitlines()
    assert ">> user 1003: /kill" in proc.stdout
