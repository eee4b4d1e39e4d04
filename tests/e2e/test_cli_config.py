"""``polybot config show|check`` end to end: sources, masking, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.procs import console_script, run

KEY = "0x" + "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"
TOKEN = "5550001111:AAE-zyxwvutsrqponmlkjihgfedcba98765"
EXAMPLE = REPO_ROOT / "config" / "service.example.toml"


def polybot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    clean.update(env or {})
    return run([console_script("polybot"), *args], cwd=REPO_ROOT, env=clean, text=True, timeout_s=60)


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    (tmp_path / "service.toml").write_text('[relayer]\ntype = "real"\n[telegram]\nenabled = true\n')
    (tmp_path / "secrets.local.toml").write_text(
        f'[relayer]\nprivate_key = "{KEY}"\napi_secret = "s3cr3t-api-value"\n[telegram]\ntoken = "{TOKEN}"\n'
    )
    return tmp_path


@pytest.fixture(autouse=True)
def no_polybot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("POLYBOT_") and "__" in name:
            monkeypatch.delenv(name)


def test_show_example_config_via_subprocess() -> None:
    result = polybot("config", "show", "--config", "config/service.example.toml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "mode:         paper" in out and "disarmed" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("feed.", "strategies.dutch."))}
    assert "wss://ws-subscriptions-clob.polymarket.com/ws/market" in lines["feed.ws_url"]
    assert lines["feed.ws_url"].rstrip().endswith("file:config/service.example.toml")
    assert lines["strategies.dutch.fee_bps"].rstrip().endswith("default")


def test_misspelt_key_exits_2_naming_file_and_key_via_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nmax_order_notional = 10\nmax_ordr_notional = 20\n")
    result = polybot("config", "show", "--config", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{bad}:3: risk.max_ordr_notional: unknown key" in result.stderr
    assert 'did you mean "max_order_notional"' in result.stderr
    assert "Traceback" not in result.stderr


def test_show_masks_secrets_and_names_sources(
    secret_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYBOT_RISK__MAX_DAILY_LOSS", "12.5")
    assert main(["config", "show", "--config", str(secret_dir / "service.toml")]) == 0
    result = capsys.readouterr()
    text = result.out + result.err
    for secret in (KEY, KEY[2:], TOKEN, "s3cr3t-api-value"):
        assert secret not in text
    rows = {
        line.split()[0]: line.split()[1:] for line in result.out.splitlines() if line.startswith(("relayer.", "risk."))
    }
    assert rows["relayer.private_key"] == ["**********", f"secrets:{secret_dir / 'secrets.local.toml'}"]
    assert rows["relayer.api_secret"] == ["**********", f"secrets:{secret_dir / 'secrets.local.toml'}"]
    assert rows["relayer.api_key"] == ["default"]  # unset secret: empty value
    assert rows["risk.max_daily_loss"] == ["12.5", "env:POLYBOT_RISK__MAX_DAILY_LOSS"]
    assert rows["relayer.type"] == ["real", f"file:{secret_dir / 'service.toml'}"]
    assert "mode:         dry-run" in result.out

    # --json, in process
    assert main(["config", "show", "--config", str(secret_dir / "service.toml"), "--json"]) == 0
    captured = capsys.readouterr()
    for secret in (KEY, KEY[2:], TOKEN, "s3cr3t-api-value"):
        assert secret not in captured.out + captured.err
    doc = json.loads(captured.out)
    assert doc["mode"] == "dry-run"
    assert doc["settings"]["relayer"]["private_key"] == "**********"
    assert doc["settings"]["telegram"]["token"] == "**********"
    assert doc["settings"]["relayer"]["api_key"] == ""
    assert doc["settings"]["risk"]["max_order_notional"] == "50"
    assert doc["sources"]["relayer.private_key"] == f"secrets:{secret_dir / 'secrets.local.toml'}"
    assert doc["sources"]["relayer.type"] == f"file:{secret_dir / 'service.toml'}"
    assert doc["sources"]["risk.max_order_notional"] == "default"
    assert doc["secrets_file"] == str(secret_dir / "secrets.local.toml")


def test_check_ok_and_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.startswith("config OK")

    bad = tmp_path / "bad.toml"
    bad.write_text('[metrics]\nport = 70000\n[relayer]\ntype = "real"\n[feeed]\nx = 1\n')
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: metrics.port:" in err
    assert f"{bad}:4: relayer.private_key: required" in err
    assert f"{bad}:5: feeed: unknown key" in err

    assert main(["config", "check", "--config", str(bad), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and len(doc["problems"]) == 3


def test_env_override_and_env_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POLYBOT_STRATEGIES__DUTCH__SAFETY_MARGIN_USDC", "0.035")
    assert main(["config", "show", "--config", str(EXAMPLE), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["strategies"]["dutch"]["safety_margin_usdc"] == "0.035"
    assert doc["sources"]["strategies.dutch.safety_margin_usdc"] == "env:POLYBOT_STRATEGIES__DUTCH__SAFETY_MARGIN_USDC"

    monkeypatch.setenv("POLYBOT_RISK__ORDERS_BURST", "60")
    assert main(["config", "check", "--config", str(EXAMPLE)]) == 2
    assert "env POLYBOT_RISK__ORDERS_BURST: risk.orders_burst: Input should be less than 60" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["config"], ["config", "show"], ["config", "check"]])
def test_help_exits_0_with_an_example(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and "polybot config" in out


def test_config_without_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 2
    assert "show" in capsys.readouterr().err


def test_check_warns_about_secrets_in_the_main_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "service.toml"
    config.write_text(f'[relayer]\ntype = "real"\nprivate_key = "{KEY}"\n[telegram]\ntoken = "{TOKEN}"\n')
    assert main(["config", "check", "--config", str(config)]) == 0  # valid: a warning, not an error
    out = capsys.readouterr()
    assert out.out.startswith("config OK")
    warnings = out.err.splitlines()
    assert warnings == [
        f"polybot config: warning: {key} is set in {config}, which is not for secrets: move it to "
        f"{tmp_path / 'secrets.local.toml'} (beside the config, chmod 600) or to the environment (variable {var})"
        for key, var in (
            ("relayer.private_key", "POLYBOT_RELAYER__PRIVATE_KEY"),
            ("telegram.token", "POLYBOT_TELEGRAM__TOKEN"),
        )
    ]
    for secret in (KEY, KEY[2:], TOKEN, TOKEN.split(":")[1]):
        assert secret not in out.out + out.err

    assert main(["config", "check", "--config", str(config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and len(doc["warnings"]) == 2 and "relayer.private_key" in doc["warnings"][0]

    # the same values in the secrets overlay: no warning
    config.write_text('[relayer]\ntype = "real"\n')
    (tmp_path / "secrets.local.toml").write_text(f'[relayer]\nprivate_key = "{KEY}"\n[telegram]\ntoken = "{TOKEN}"\n')
    (tmp_path / "secrets.local.toml").chmod(0o600)
    assert main(["config", "check", "--config", str(config)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("config OK") and out.err == ""


def test_show_masks_a_secret_pasted_under_a_plain_text_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    half = TOKEN.split(":")[1]
    cid = "0x" + "cd" * 32
    config = tmp_path / "service.toml"
    config.write_text(f'[service]\nname = "{half}"\n[logging]\nfile = "./var/{KEY}.log"\n[feed]\nmarkets = ["{cid}"]\n')
    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["service"]["name"] == "***"
    assert doc["settings"]["logging"]["file"] == "./var/***.log"
    assert doc["settings"]["feed"]["markets"] == [cid]  # a market list holds condition ids by design
    assert doc["settings"]["feed"]["ws_url"] == "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    assert main(["config", "show", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert half not in out and KEY[2:] not in out and cid in out
