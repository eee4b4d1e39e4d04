"""Telegram at the start of ``polybot run-service`` (issue 19 point 2), over real sockets: the
service runs as a subprocess in its own process group; its bot talks to the Bot API double
served over HTTP on loopback (:class:`polybot.bot_api_server.BotApiServer`) through
``telegram.base_url``, exactly as it would talk to Telegram.

- Telegram unreachable at start (nothing listens on ``base_url``'s port): one line naming
  Telegram, the service keeps running, DISARMED; once the double listens on that port the bot
  comes up by itself, delivers what was held (the start alert), says once that the chat is up,
  and answers /status (still disarmed) — one "reached" log line, no second "unreachable" one.
- A token Telegram rejects: exit 2 with one line saying what to put where, never the token.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.offline import plain_text
from polybot.bot_api_server import BotApiServer
from polybot.cli.main import main
from polybot.updates import Updates
from tests.e2e.test_run_service import BAD_SIGNS, START_TIMEOUT_S, STOP_TIMEOUT_S, Doubles, start_service, write_config
from tests.procs import group_members, stop_group, wait_until

pytestmark = pytest.mark.slow  # a real process: its start-up alone takes seconds

TOKEN = "123456:" + "T" * 35  # shaped like a token from @BotFather; only the double ever sees it
OTHER_TOKEN = "654321:" + "O" * 35
ADMIN = 1001
CONNECT_TIMEOUT_S = 120.0  # a ceiling: the retries run 1, 2, 4 ... s apart, at most a minute


@pytest.fixture
def doubles() -> Iterator[Doubles]:
    d = Doubles()
    try:
        yield d
    finally:
        d.close()


def closed_port() -> int:
    """A loopback port nothing listens on (until the test starts the Bot API double there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def configure(tmp_path: Path, d: Doubles, port: int, token: str = TOKEN) -> Path:
    db_path = tmp_path / "service.db"
    assert main(["refresh-markets", d.gamma.url, "--db-url", f"sqlite:///{db_path}", "--migrate"]) == 0
    config = tmp_path / "service.toml"
    write_config(config, d, db_path)
    with config.open("a") as f:
        f.write(
            f'\n[telegram]\nenabled = true\nbase_url = "http://127.0.0.1:{port}/bot"\n'
            f'users = [{{ id = {ADMIN}, role = "admin" }}]\nalert_chats = [{ADMIN}]\n'
        )
    secrets = tmp_path / "secrets.local.toml"
    secrets.touch(mode=0o600)
    secrets.write_text(f'[telegram]\ntoken = "{token}"\n')
    return config


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    out["PYTHONWARNINGS"] = "default"
    return out


def sent_to_admin(server: BotApiServer) -> list[str]:
    return [c.text or "" for c in list(server.api.calls) if c.method == "sendMessage" and c.chat_id == ADMIN]


def test_telegram_unreachable_at_start_then_reached(doubles: Doubles, tmp_path: Path) -> None:
    port = closed_port()
    config = configure(tmp_path, doubles, port)
    proc, stderr = start_service(config, env())
    server = BotApiServer(port=port, token=TOKEN)
    try:
        stderr.wait_for("polybot: running in paper mode, DISARMED", START_TIMEOUT_S)
        text = stderr.wait_for(f"Telegram unreachable at http://127.0.0.1:{port}", START_TIMEOUT_S)
        assert proc.poll() is None, "the service exited because Telegram did not answer"
        line = next(x for x in text.splitlines() if "Telegram unreachable" in x)
        assert "DISARMED" in line and "retrying" in line and TOKEN not in line
        # Telegram comes back: the double listens where base_url points
        doubles.call(server.start())
        wait_until(
            lambda: any("Chat connected" in t for t in sent_to_admin(server)), CONNECT_TIMEOUT_S, "the chat-up alert"
        )
        assert proc.poll() is None
        sent = sent_to_admin(server)
        assert sum("Chat connected" in t for t in sent) == 1, sent
        assert "disarmed" in next(t for t in sent if "Chat connected" in t)
        # what was said while nobody could hear it is delivered: the start alert
        assert any("Polybot started in paper mode, disarmed" in t for t in sent), sent
        # the chat works over the sockets, and the service is still disarmed
        before = len(sent)
        server.push(Updates().msg(ADMIN, "/status"))
        wait_until(lambda: len(sent_to_admin(server)) > before, START_TIMEOUT_S, "the /status answer")
        status = plain_text(sent_to_admin(server)[before])
        assert "mode paper" in status and "disarmed" in status, status
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_TIMEOUT_S)
    finally:
        rc = stop_group(proc)
        out = stderr.close()
        doubles.call(server.stop())
    assert not group_members(proc.pid)
    assert rc == 0, out
    assert out.count("Telegram unreachable") == 1, out  # the retries are not logged at this level
    assert out.count(f"Telegram reached at http://127.0.0.1:{port}") == 1, out
    assert "polybot: stopped cleanly" in out
    for bad in (*BAD_SIGNS, "on_frame raised", TOKEN):
        assert bad not in out, f"{bad!r} in stderr:\n{out}"


def test_a_token_telegram_rejects_stops_the_start_with_a_clear_line(doubles: Doubles, tmp_path: Path) -> None:
    server = BotApiServer(token=OTHER_TOKEN)  # answers only another bot's token: ours gets Telegram's 401
    doubles.call(server.start())
    try:
        config = configure(tmp_path, doubles, server.port)
        proc, stderr = start_service(config, env())
        try:
            proc.wait(START_TIMEOUT_S)
        finally:
            rc = stop_group(proc)
            out = stderr.close()
    finally:
        doubles.call(server.stop())
    assert rc == 2, out
    assert "telegram.token: Telegram rejected it" in out and "@BotFather" in out and "secrets.local.toml" in out
    assert TOKEN not in out and "Traceback" not in out
    assert server.get_me >= 1  # it was asked
