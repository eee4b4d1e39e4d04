"""``polybot replay-book`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.feed.frames import book_frame, change, price_change_frame
from polybot.cli.main import main
from tests.conftest import PROJECT_FIXTURES, REPO_ROOT
from tests.procs import console_script, run

DEMO = PROJECT_FIXTURES / "recordings" / "demo_market.jsonl"


def test_replay_book_json_via_the_console_script() -> None:
    proc = run([console_script("polybot"), "replay-book", str(DEMO), "--json"], cwd=REPO_ROOT, text=True, timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["frames"] == len(DEMO.read_text().splitlines())
    assert report["decode_error_count"] == 0 and report["integrity_fault_count"] == 0
    assert len(report["assets"]) == 8
    for row in report["assets"]:
        assert row["status"] == "ok"
        assert row["bid_levels"] > 0 and row["ask_levels"] > 0
        assert row["best_bid"] < row["best_ask"]  # same-width decimal strings on the 0.01 grid
        assert row["fault_count"] == 0
    assert report["events"]["PriceChange"] > 300


def test_replay_book_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for _ in range(2):
        assert main(["replay-book", str(DEMO), "--json"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def _faulty_recording(tmp_path: Path) -> Path:
    a, b = "1111", "2222"
    frames = [
        book_frame(a, [("0.40", "10")], [("0.60", "10")], ts_ms=1),
        book_frame(b, [("0.30", "10")], [("0.70", "10")], ts_ms=1),
        price_change_frame([change(a, "BUY", "0.41", "5", "0.42", "0.6")], ts_ms=2),  # lies about the top
        price_change_frame([change(b, "BUY", "0.31", "-5", "0.31", "0.7")], ts_ms=3),  # negative size
        "{not json",
        "PONG",
    ]
    path = tmp_path / "faulty.jsonl"
    lines = [json.dumps({"recv_ns": (i + 1) * 1_000_000, "frame": f}) for i, f in enumerate(frames)]
    path.write_text("\n".join(lines) + "\n" + '{"recv_ns": 99, "fra\n')
    return path


def test_replay_book_reports_faults_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _faulty_recording(tmp_path)
    assert main(["replay-book", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 6 and report["pongs"] == 1 and report["bad_lines"] == 1
    assert report["decode_errors"] == {"malformed_json": 1, "negative_size": 1}
    assert report["integrity_faults"] == {"mismatch": 1}
    rows = {r["asset_id"]: r for r in report["assets"]}
    assert rows["1111"]["status"] == "inconsistent" and rows["1111"]["fault_count"] == 1
    assert rows["1111"]["best_bid"] == "0.41"
    assert rows["2222"]["status"] == "ok" and rows["2222"]["best_bid"] == "0.3"


def test_replay_book_text_and_asset_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _faulty_recording(tmp_path)
    assert main(["replay-book", str(path), "--asset", "2222"]) == 0
    out = capsys.readouterr().out
    assert "2222" in out and "1111" not in out.split("\n", 2)[2].split("decode errors")[0]
    assert "decode errors: malformed_json=1, negative_size=1" in out
    assert "integrity faults: mismatch=1" in out


def test_replay_book_stale_at_the_end_of_a_long_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "long.jsonl"
    rows = [
        {"recv_ns": 0, "frame": book_frame("a", [("0.4", "1")], [("0.6", "1")])},
        {"recv_ns": 120 * 10**9, "frame": book_frame("b", [("0.4", "1")], [("0.6", "1")])},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["replay-book", str(path), "--json", "--staleness-ms", "60000"]) == 0
    status = {r["asset_id"]: r["status"] for r in json.loads(capsys.readouterr().out)["assets"]}
    assert status == {"a": "stale", "b": "ok"}


def test_replay_book_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay-book", str(tmp_path / "missing.jsonl")]) == 1
    assert "recording not found" in capsys.readouterr().err
    assert main(["replay-book", str(DEMO), "--asset", "42"]) == 1
    assert "asset not in" in capsys.readouterr().err
    for bad in ("-1", "nan", "inf"):
        assert main(["replay-book", str(DEMO), "--speed", bad]) == 2
        assert "argument --speed" in capsys.readouterr().err


def test_replay_book_reads_a_shared_capture(shared_fixtures: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay-book", str(shared_fixtures / "ws_market" / "ws_book_snapshot_captured.json"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["assets"]
    assert (row["best_bid"], row["bid_levels"], row["ask_levels"], row["status"]) == ("0.07", 7, 57, "ok")
