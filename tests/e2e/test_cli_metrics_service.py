"""``polybot metrics --config FILE`` reads the running service's ``/metrics`` (issue 19, point 6).

The real ``polybot run-service`` runs as a subprocess (its own process group) against the local
doubles with ``[metrics] enabled``; ``polybot metrics`` (also a subprocess) reads it over a real
socket and says where it read. Once the service is gone, the same command says plainly that
nothing answers there and that the values are the bundled recording's, replayed in-process.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.e2e.test_run_service import START_TIMEOUT_S, Doubles, doubles, start_service, write_config
from tests.procs import console_script, run, stop_group

__all__ = ["doubles"]  # the fixture, imported for the tests below

METRICS_LINE = re.compile(r"metrics on (http://127\.0\.0\.1:(\d+)/metrics)")
BUNDLED = "fixtures/recordings/demo_market.jsonl"
BUNDLED_FRAMES = 403  # what replaying the bundled recording counts (tests/e2e/test_cli_metrics.py)


def metrics(config: Path, *extra: str) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    proc = run(
        [console_script("polybot"), "metrics", "--config", str(config), *extra], timeout_s=60, cwd=REPO_ROOT, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode(), proc.stderr.decode()


def test_metrics_reads_the_running_service_then_says_it_replays_once_it_is_gone(
    doubles: Doubles, tmp_path: Path
) -> None:
    db_path = tmp_path / "service.db"
    assert main(["refresh-markets", doubles.gamma.url, "--db-url", f"sqlite:///{db_path}", "--migrate"]) == 0
    config = tmp_path / "service.toml"
    write_config(config, doubles, db_path)  # [metrics] enabled on port 0: the service picks one
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    proc, stderr_lines = start_service(config, env)
    try:
        found = METRICS_LINE.search(stderr_lines.wait_for("/metrics", START_TIMEOUT_S))
        assert found is not None, stderr_lines.text
        url, port = found.group(1), found.group(2)
        stderr_lines.wait_for("polybot: running in paper mode, DISARMED", START_TIMEOUT_S)
        # the user's copy of the configuration names the port the service listens on
        ours = tmp_path / "ours.toml"
        ours.write_text(config.read_text().replace("port = 0", f"port = {port}"))

        out, _ = metrics(ours)
        assert out.splitlines()[0] == f"read from {url} (the service of {ours})", out
        assert "replayed" not in out and "Feed health" in out

        doc, err = metrics(ours, "--json")
        data = json.loads(doc)
        assert data["source"]["read_from"] == url and f"read from {url}" in err
        # only a running service has an arm state; a replay in the CLI process binds none
        assert data["metrics"]["polybot_armed"]["series"] == [{"labels": {}, "value": 0}]
        frames = data["metrics"]["polybot_ws_frames_total"]["series"][0]["value"]
        assert frames > 0
    finally:
        stop_group(proc)
        stderr_lines.close()

    out, _ = metrics(ours)
    lines = out.splitlines()
    assert lines[0].startswith(f"nothing answers at {url} (ConnectionRefusedError"), out
    assert lines[0].endswith(f"is the service of {ours} running?"), out
    assert lines[1] == (
        f"replayed the bundled recording {BUNDLED} through this process: not a running service's values"
    )
    assert re.search(rf"^  ws_frames_total\s+{BUNDLED_FRAMES}$", out, re.M), out


def test_metrics_says_it_replays_when_the_config_serves_no_metrics(tmp_path: Path) -> None:
    config = tmp_path / "service.toml"
    config.write_text("[metrics]\nenabled = false\n")
    out, _ = metrics(config)
    assert out.splitlines()[:2] == [
        f"[metrics] is not enabled in {config}: the service there serves no /metrics",
        f"replayed the bundled recording {BUNDLED} through this process: not a running service's values",
    ], out
