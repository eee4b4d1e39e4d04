"""The preflight's Telegram row asks Telegram itself (Bot API ``getMe``), over real sockets against
the Bot API double served on loopback (:class:`polybot.bot_api_server.BotApiServer`): the token
accepted names the bot; a token refused, or a Bot API that does not answer, is a FAIL naming
Telegram and never the token; ``--offline`` skips the question and says so; a bot hosted on a
double (the demo, the sandbox) is answered by that double, not over the network."""

from __future__ import annotations

import socket
from pathlib import Path

from bot.fake_api import FakeBotApi
from core.control.types import PreflightCheck
from core.preflight import run_preflight
from core.preflight.telegram import check_telegram_api
from core.settings import LoadedSettings, load_settings
from polybot.bot_api_server import BotApiServer

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
OTHER = "987654321:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
TELEGRAM = '[telegram]\nenabled = true\nbase_url = "{url}"\nusers = ["11:admin", "12:viewer"]\n'


def _load(tmp_path: Path, url: str, token: str = TOKEN) -> LoadedSettings:
    path = tmp_path / "service.toml"
    path.write_text(TELEGRAM.format(url=url))
    secrets = tmp_path / "secrets.local.toml"
    secrets.touch(mode=0o600)
    secrets.write_text(f'[telegram]\ntoken = "{token}"\n')
    return load_settings(path, env={})


async def _check(loaded: LoadedSettings, *, offline: bool = False) -> PreflightCheck:
    return await check_telegram_api(loaded.settings, offline=offline, timeout_s=5.0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_token_telegram_accepts_names_the_bot(tmp_path: Path) -> None:
    async with BotApiServer(FakeBotApi(username="trading_desk_bot"), token=TOKEN) as server:
        check = await _check(_load(tmp_path, server.url))
        assert server.get_me == 1
    assert check.ok and not check.skipped
    assert "@trading_desk_bot" in check.detail and "2 authorised user(s): 1 admin, 1 viewer" in check.detail
    assert TOKEN not in check.detail


async def test_a_token_telegram_refuses_fails_naming_telegram_and_what_to_do(tmp_path: Path) -> None:
    async with BotApiServer(token=OTHER) as server:
        check = await _check(_load(tmp_path, server.url))
    assert not check.ok and not check.skipped
    assert check.detail.startswith("Telegram rejected telegram.token") and "HTTP 401" in check.detail
    assert "@BotFather" in check.detail and TOKEN not in check.detail and TOKEN.split(":")[1] not in check.detail


async def test_a_bot_api_that_does_not_answer_fails_naming_telegram(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/bot"
    check = await _check(_load(tmp_path, url))
    assert not check.ok and not check.skipped
    assert "Telegram's Bot API at http://127.0.0.1:" in check.detail and "unreachable" in check.detail
    assert "/bot" not in check.detail and TOKEN not in check.detail  # the origin only: the token follows /bot


async def test_offline_the_token_is_not_checked_and_the_row_says_so(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/bot"
    check = await _check(_load(tmp_path, url), offline=True)
    assert check.skipped and "not checked with Telegram (--offline)" in check.detail


async def test_the_whole_preflight_carries_the_row_and_a_bot_on_a_double_is_asked_there(tmp_path: Path) -> None:
    loaded = _load(tmp_path, f"http://127.0.0.1:{_closed_port()}/bot")  # nothing listens: must not be asked
    api = FakeBotApi(username="offline_double_bot")
    report = await run_preflight(loaded, offline=False, telegram_identity=api.get_me_username, timeout_s=2.0)
    row = next(c for c in report.checks if c.name == "telegram")
    assert row.ok and "@offline_double_bot" in row.detail
    refused = await run_preflight(loaded, offline=False, timeout_s=2.0)
    assert "telegram" in refused.failed
