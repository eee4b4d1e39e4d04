"""Secrets are never echoed by the CLI, whichever layer they were typed in and under whichever key.

Real ``polybot`` processes (the venv's console script, each leading its own process group, the
whole group killed if it overstays) with ``-vv`` so every DEBUG log line reaches stderr. Each
secret shape (0x + 64-hex key, Telegram token, its secret half alone, base64 API secret, 64-hex
passphrase, a PostgreSQL URL with a password and a scheme typo) is fed through the main file, the
secrets overlay and the environment; stdout and stderr are searched for any 8 consecutive
characters of any secret.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.procs import console_script, run
from tests.secret_shapes import (
    API_PASSPHRASE,
    API_SECRET,
    BOT_TOKEN,
    DB_PASSWORD,
    MISPLACED_ENV,
    MISPLACED_KEYS,
    MISPLACED_TOML,
    PRIVATE_KEY,
    SECRETS,
    assert_no_secret,
)

API_KEY = "b5a0c1d2-7e4f-4a3b-9c8d-e1f2a3b4c5d6"
EVERY_SECRET = {**SECRETS, "api key": API_KEY}
TIMEOUT_S = 90.0  # a ceiling for a busy CI machine; these commands take about a second


class Polybot:
    """Runs ``polybot -vv ARGS`` in ``cwd`` to completion, in its own process group."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
        clean.update(env or {})
        done = run([console_script("polybot"), "-vv", *args], cwd=self.cwd, env=clean, text=True, timeout_s=TIMEOUT_S)
        return done.returncode, f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


@pytest.fixture
def polybot(tmp_path: Path) -> Polybot:
    return Polybot(tmp_path)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("layer", ["file", "secrets", "env"])
def test_refused_configuration_never_echoes_a_secret(polybot: Polybot, tmp_path: Path, layer: str) -> None:
    config = tmp_path / "service.toml"
    config.write_text(MISPLACED_TOML if layer == "file" else "")
    if layer == "secrets":
        overlay = tmp_path / "secrets.local.toml"
        overlay.write_text(MISPLACED_TOML)
        overlay.chmod(0o600)
    env = MISPLACED_ENV if layer == "env" else {}
    for command in (["config", "check"], ["preflight", "--offline"], ["run-service"]):
        rc, output = polybot(*command, "--config", str(config), env=env)
        assert rc == 2, output
        assert "invalid configuration" in output
        for key in MISPLACED_KEYS:
            assert f" {key}: " in output, (key, output)
        assert_no_secret(output)
        assert "postgresq://polybot:***@127.0.0.1:5432/polybot" in output  # the URL is shown, not its password


def test_secrets_kept_in_the_main_file_are_named_never_shown(polybot: Polybot, tmp_path: Path) -> None:
    """A valid live configuration with every secret in service.toml: warned, FAILed, never printed."""
    dead = _closed_port()
    config = tmp_path / "service.toml"
    config.write_text(
        f'[feed]\nws_url = "ws://127.0.0.1:{dead}/ws/market"\nuser_ws_url = "ws://127.0.0.1:{dead}/ws/user"\n'
        f'[gamma]\nurl = "http://127.0.0.1:{dead}"\n[clob]\nurl = "http://127.0.0.1:{dead}"\n'
        f'[relayer]\ntype = "real"\ndry_run = false\nprivate_key = "{PRIVATE_KEY}"\n'
        f'api_key = "{API_KEY}"\napi_secret = "{API_SECRET}"\napi_passphrase = "{API_PASSPHRASE}"\n'
        f'[telegram]\nenabled = true\ntoken = "{BOT_TOKEN}"\nbase_url = "http://127.0.0.1:{dead}/bot"\n'
        f'users = [{{ id = 1001, role = "admin" }}]\n'
        f'[db]\nurl = "postgresql://polybot:{DB_PASSWORD}@127.0.0.1:{dead}/polybot"\n'
    )
    rc, output = polybot("config", "check", "--config", str(config))
    assert rc == 0, output
    for key in ("relayer.private_key", "relayer.api_key", "relayer.api_secret", "relayer.api_passphrase"):
        assert f"warning: {key} is set in {config}" in output
    assert "warning: telegram.token is set in" in output and "warning: db.url (it carries a password)" in output
    assert_no_secret(output, EVERY_SECRET)

    rc, output = polybot("config", "show", "--config", str(config))
    assert rc == 0 and "**********" in output, output
    assert_no_secret(output, EVERY_SECRET)

    rc, output = polybot("preflight", "--config", str(config), "--offline")
    assert rc == 1, output
    assert (
        "FAIL  secrets       relayer.private_key, relayer.api_key, relayer.api_secret, relayer.api_passphrase, "
        f"telegram.token, db.url (it carries a password) are set in {config}"
    ) in output
    assert_no_secret(output, EVERY_SECRET)
