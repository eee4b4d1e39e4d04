"""Quiet logs (issue 19, point 8): a service start says what happened, once.

- Alembic speaks only when a migration runs: starting on an up-to-date database checks the schema
  with one query and logs nothing from Alembic (it used to log "Context impl SQLiteImpl." and
  "Will assume non-transactional DDL." at every start, nine lines with its plugin set-up).
- An error is reported by whoever handles it, once: a CLOB request that fails is raised to the
  caller, not also logged as a WARNING by the transport (a command printed the same text twice,
  the service's heartbeat logged two warnings per failed beat).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.e2e.test_run_service import START_TIMEOUT_S, STOP_TIMEOUT_S, Doubles, doubles, start_service, write_config
from tests.procs import console_script, run, stop_group

__all__ = ["doubles"]  # the fixture, imported for the test below


def test_a_service_start_on_an_up_to_date_database_logs_nothing_from_alembic(doubles: Doubles, tmp_path: Path) -> None:
    db_path = tmp_path / "service.db"
    assert main(["refresh-markets", doubles.gamma.url, "--db-url", f"sqlite:///{db_path}", "--migrate"]) == 0
    config = tmp_path / "service.toml"
    write_config(config, doubles, db_path)  # [logging] level = "INFO"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    proc, stderr_lines = start_service(config, env)
    try:
        stderr_lines.wait_for("polybot: running in paper mode, DISARMED", START_TIMEOUT_S)
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_TIMEOUT_S)
    finally:
        stop_group(proc)
        stderr = stderr_lines.close()
    assert " INFO " in stderr, stderr  # the service logs at INFO: an Alembic INFO line would show
    assert "alembic" not in stderr.lower(), stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failed_clob_request_is_reported_once() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env["TEST_SIGNING_KEY"] = "0x" + "11" * 32  # a throwaway key: nothing is posted
    url = f"http://127.0.0.1:{_closed_port()}"
    argv = [console_script("polybot"), "relayer-dry-run", "123456", "Yes", "BUY", "0.45", "10"]
    argv += ["--base-url", url, "--private-key", "env:TEST_SIGNING_KEY"]
    done = run(argv, timeout_s=120.0, text=True, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, f"expected one error line, got:\n{done.stderr}"
    assert lines[0].startswith(f"polybot relayer-dry-run: cannot read tick size / neg-risk of token 123456 from {url}")
    assert "WARNING" not in done.stderr  # no transport warning repeating it


def test_a_feed_that_never_answers_is_reported_once_by_ingest_ws_and_record_ws(tmp_path: Path) -> None:
    """The connections that die before any frame are the command's own last line, not WARNINGs too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    url = f"ws://127.0.0.1:{_closed_port()}/"
    commands = {
        "ingest-ws": ["ingest-ws", url, "123", "--db-url", f"sqlite:///{tmp_path / 'x.db'}", "--migrate"],
        "record-ws": ["record-ws", url, str(tmp_path / "r.jsonl"), "--subscribe", "123"],
    }

    def run_for_4_s(args: list[str]) -> subprocess.CompletedProcess[str]:
        argv = [console_script("polybot"), *args, "--duration", "4"]
        return run(argv, timeout_s=120.0, text=True, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL)

    with ThreadPoolExecutor(len(commands)) as pool:  # side by side: each mostly waits out its duration
        finished = dict(zip(commands, pool.map(run_for_4_s, commands.values()), strict=True))
    for name, done in finished.items():
        assert done.returncode == 1, f"{name}: exit {done.returncode}\n{done.stderr}"
        errors = [line for line in done.stderr.splitlines() if line.startswith(f"polybot {name}:")]
        assert len(errors) == 1 and "connect failed" in errors[0], done.stderr
        assert "WARNING" not in done.stderr, f"{name} repeats its error line in a WARNING:\n{done.stderr}"
