"""`polybot balance` / `merge` / `redeem` as a user runs them: against a running paper service
(a subprocess, its own process group) through the database they share, with --json; and without
a service the request expires unrun and says so."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.e2e.test_run_service import START_TIMEOUT_S, Doubles, doubles, start_service, write_config
from tests.procs import console_script, stop_group

__all__ = ["doubles"]  # the fixture, used by name below
BINARY = "demo-btc-above-150k-2026"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script("polybot"), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow(seconds=13)
def test_balance_and_merge_through_the_running_service(doubles: Doubles, tmp_path: Path) -> None:
    db_path = tmp_path / "service.db"
    db_url = f"sqlite:///{db_path}"
    assert main(["refresh-markets", doubles.gamma.url, "--db-url", db_url, "--migrate"]) == 0
    config = tmp_path / "service.toml"
    write_config(config, doubles, db_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    proc, lines = start_service(config, env)
    try:
        lines.wait_for("polybot: running in paper mode, DISARMED", START_TIMEOUT_S)
        balance = cli("balance", "--db-url", db_url, "--json", env=env)
        assert balance.returncode == 0, balance.stderr
        answer = json.loads(balance.stdout)
        assert answer["mode"] == "paper" and answer["collateral"] == "1000"
        assert answer["mergeable"] == [] and answer["redeemable"] == []
        merge = cli("merge", BINARY, "--sets", "5", "--dry-run", "--json", "--db-url", db_url, env=env)
        assert merge.returncode == 1
        refused = json.loads(merge.stdout)
        assert refused["reason_code"] == "nothing_to_merge" and BINARY in refused["error"]
        text = cli("redeem", "--db-url", db_url, env=env)
        assert text.returncode == 1 and text.stdout.startswith("redeem: refused: nothing to redeem")
    finally:
        stop_group(proc)
        lines.close()


def test_without_a_service_the_request_expires_unrun(tmp_path: Path, clean_env: dict[str, str]) -> None:
    db_url = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["migrate", "--db-url", db_url, "--apply"]) == 0
    result = cli("balance", "--db-url", db_url, "--wait", "0.5", env=clean_env)
    assert result.returncode == 1 and "is run-service using this database?" in result.stderr
    assert "polybot balance: balance request " in result.stderr and "request request" not in result.stderr
