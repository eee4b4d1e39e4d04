"""``polybot relayer-api-creds`` (README "Going live", step 7): the configured key's CLOB API
credentials, derived with L1 auth at the CLOB double over its socket, written into the secrets file
beside the configuration (its other lines kept, chmod 600) so the configuration then loads them;
a placeholder key, or none, is refused with what to put where and nothing is sent."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from core.settings import load_settings
from core.sim.mock_clob import MockClobServer
from polybot.cli.main import main
from polybot.cli.tools.creds_cmd import set_keys
from tests.loop_thread import LoopThread

KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture
def clob() -> Iterator[MockClobServer]:
    loop = LoopThread()
    server = MockClobServer()
    loop.call(server.start())
    try:
        yield server
    finally:
        loop.call(server.stop())
        loop.close()


def _config(tmp_path: Path, clob_url: str, secrets: str) -> Path:
    config = tmp_path / "service.toml"
    config.write_text(f'[clob]\nurl = "{clob_url}"\n')
    path = tmp_path / "secrets.local.toml"
    path.write_text(secrets)
    path.chmod(0o600)
    return config


def test_the_credentials_are_derived_and_written_beside_the_config(
    clob: MockClobServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("POLYBOT_RELAYER__API_KEY", "POLYBOT_RELAYER__API_SECRET", "POLYBOT_RELAYER__API_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    secrets = f'# mine\n[relayer]\nprivate_key = "{KEY}"\napi_key = ""\n\n[telegram]\n# keep me\n'
    config = _config(tmp_path, clob.url, secrets)
    assert main(["relayer-api-creds", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    expected = clob.creds_for(Account.from_key(KEY).address)
    written = (tmp_path / "secrets.local.toml").read_text()
    assert "# mine" in written and "# keep me" in written and written.count("api_key") == 1
    assert stat.S_IMODE((tmp_path / "secrets.local.toml").stat().st_mode) == 0o600
    relayer = load_settings(config, env={}).settings.relayer
    assert relayer.api_key is not None and relayer.api_key.get_secret_value() == expected.api_key
    assert relayer.api_secret is not None and relayer.api_secret.get_secret_value() == expected.secret
    assert relayer.api_passphrase is not None and relayer.api_passphrase.get_secret_value() == expected.passphrase
    assert expected.secret not in out and expected.passphrase not in out  # nothing secret on the terminal
    assert len(clob.requests_to("GET", "/auth/derive-api-key")) >= 1


def test_a_placeholder_key_is_refused_naming_the_file_and_line(
    clob: MockClobServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, clob.url, '[relayer]\nprivate_key = "<YOUR_PRIVATE_KEY>"\n')
    assert main(["relayer-api-creds", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "secrets.local.toml:2: relayer.private_key: must be 64 hex digits" in err and "Traceback" not in err
    assert not clob.requests


def test_no_key_says_what_to_put_where(
    clob: MockClobServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, clob.url, "[relayer]\n")
    assert main(["relayer-api-creds", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert 'private_key = "<YOUR_PRIVATE_KEY>"' in err and str(tmp_path / "secrets.local.toml") in err
    assert not clob.requests


def test_set_keys_replaces_adds_and_creates_the_table() -> None:
    assert set_keys("", "relayer", {"api_key": "k"}) == '[relayer]\napi_key = "k"\n'
    text = '[relayer]\nprivate_key = "x"\napi_key = "old"\n\n[db]\nurl = "u"\n'
    assert set_keys(text, "relayer", {"api_key": "new", "api_secret": "s"}) == (
        '[relayer]\nprivate_key = "x"\napi_key = "new"\napi_secret = "s"\n\n[db]\nurl = "u"\n'
    )
    assert set_keys('[db]\nurl = "u"\n', "relayer", {"api_key": "k"}) == '[db]\nurl = "u"\n\n[relayer]\napi_key = "k"\n'
