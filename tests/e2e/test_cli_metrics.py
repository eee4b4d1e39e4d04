"""``polybot metrics``, ``metrics-export`` and ``metrics-serve`` end to end (in-process ``main``).

Each test gets a fresh metrics object in place of the process-wide one, so values are exact.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import core.metrics.collect
from core.metrics.catalog import CATALOG
from core.metrics.collect import Metrics
from polybot.cli.main import main
from tests.conftest import PROJECT_FIXTURES
from tests.procs import run

RECORDING = PROJECT_FIXTURES / "recordings" / "demo_market.jsonl"


@pytest.fixture(autouse=True)
def fresh_metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    m = Metrics()
    monkeypatch.setattr(core.metrics.collect, "METRICS", m)
    return m


def series(data: dict[str, object], name: str) -> list[dict[str, object]]:
    return data["metrics"][name]["series"]  # type: ignore[index]


def value(data: dict[str, object], name: str, **labels: str) -> object:
    [row] = [r for r in series(data, name) if r["labels"] == labels]
    return row["value"] if "value" in row else row


def test_metrics_json_replays_the_project_recording_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert value(data, "polybot_ws_frames_total") == 403
    assert value(data, "polybot_ws_events_total", event_type="book") == 10
    assert value(data, "polybot_books", status="ok") == 8
    assert value(data, "polybot_feed_input_errors_total", reason="malformed_json") == 0
    written = value(data, "polybot_writer_rows_written_total")
    assert isinstance(written, int) and written > 0
    commit = value(data, "polybot_writer_receive_to_commit_seconds")
    assert commit["count"] == written  # type: ignore[index]
    apply = value(data, "polybot_feed_receive_to_apply_seconds")
    assert apply["count"] == 403 and apply["buckets"]["+Inf"] == 403  # type: ignore[index]
    assert data["metrics"]["polybot_armed"]["series"] == []  # nothing invented for unbound parts


def test_metrics_human_summary_groups_by_dashboard_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--replay", str(RECORDING)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:4] == [
        "no --config: no service read (--config FILE reads a running service's /metrics)",
        f"replayed the recording {RECORDING.relative_to(Path.cwd())} through this process: "
        "not a running service's values",
        "",
        "Feed health",
    ]
    assert re.search(r"^  ws_frames_total\s+403$", out, re.M)
    assert re.search(r"^  books\s+ok 8$", out, re.M)
    assert "Book integrity" in out and "Storage" in out
    assert re.search(r"feed_receive_to_apply_seconds\s+403 samples, mean", out)


def test_metrics_replays_a_shared_json_capture(shared_fixtures: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = shared_fixtures / "ws_market" / "ws_market_new_market_msg.json"
    assert main(["metrics", "--json", "--replay", str(capture)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert value(data, "polybot_ws_frames_total") == 1
    assert value(data, "polybot_ws_events_total", event_type="new_market") == 1


def test_metrics_export_writes_a_promtool_clean_exposition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "metrics.prom"
    assert main(["metrics-export", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    text = out.read_bytes()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text.decode())
        for s in fam.samples
    }
    assert samples[("polybot_ws_frames_total", ())] == 403
    assert samples[("polybot_feed_input_errors_total", (("reason", "off_tick"),))] == 0
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    proc = run([promtool, "check", "metrics"], input=text, timeout_s=30)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stderr.decode()


def test_metrics_export_to_stdout_without_replay_declares_every_metric(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    assert main(["metrics-export", "--no-replay"]) == 0
    text = capsysbinary.readouterr().out
    for spec in CATALOG:
        assert f"# TYPE {spec.name} {spec.kind}".encode() in text, spec.name
    assert b"\npolybot_ws_frames_total " not in text  # no feed ran in this process


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["metrics", "--replay", "/proc/nonexistent/rec.jsonl"], "recording not found"),
        (["metrics-export", "--no-replay", "--out", "/proc/nonexistent/m.prom"], "output directory does not exist"),
        (
            ["metrics-serve", "--port", "70000", "--no-replay"],
            "argument --port: must be a whole number from 0 to 65535",
        ),
        (["metrics-serve", "--port", "0", "--subscribe", "1"], "--subscribe needs --ws-url"),
        (["metrics-serve", "--port", "0", "--ws-url", "http://x"], "must start with ws://"),
        (["metrics-serve", "--port", "0", "--ws-url", "ws://127.0.0.1:1/ws"], "needs --subscribe"),
        (["metrics-serve", "--port", "0", "--rate", "-1"], "argument --rate: must be a number of frames per second"),
        (["metrics-serve", "--port", "0", "--duration", "0"], "argument --duration: must be a number of seconds"),
        (["metrics-serve", "--port", "0", "--duration", "nan"], "argument --duration: must be a number of seconds"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_replay_and_no_replay_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--replay", str(RECORDING), "--no-replay"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_metrics_serve_on_a_busy_port_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["metrics-serve", "--port", str(port), "--no-replay", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err


def test_metrics_serve_with_duration_serves_then_stops(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics-serve", "--port", "0", "--replay", str(RECORDING), "--duration", "1.5"]) == 0
    out, err = capsys.readouterr()
    url = out.splitlines()[0]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url)
    assert "replay done: 403 frames" in err


@pytest.mark.parametrize("command", ["metrics", "metrics-export", "metrics-serve"])
def test_help_ends_with_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example:\n  polybot " + command in out
