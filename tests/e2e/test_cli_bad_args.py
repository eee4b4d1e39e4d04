"""Malformed CLI arguments: exit 2 with one line naming the argument, before anything runs.

Each case is one the review of issue 13 found answered badly (an exception class name, a raw
``int()`` error, silently accepted, or a default used instead of what was typed). They run
in-process through ``polybot.cli.main.main``: argument errors are argparse's, raised before any
socket, file or database is touched, so nothing here waits on the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polybot.cli.main import main

KEY = "0x" + "11" * 32
WS_NOWHERE = "ws://127.0.0.1:9/ws/market"
MISSING = "/proc/nonexistent/polybot"  # cannot be created, even by root
A_FILE = __file__  # an existing file, so a bad option after it is the error


@pytest.fixture(autouse=True)
def _no_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """A case that slipped through must not touch ./var/polybot.db."""
    monkeypatch.setenv("POLYBOT_DB__URL", f"sqlite:///{MISSING}/none.db")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error:" in ln or ln.startswith("polybot ")]
    assert len(errors) == 1, err
    return errors[0]


DRY = ["relayer-dry-run", "123456", "Yes", "BUY"]
DRY_OPTS = ["--private-key", KEY, "--tick-size", "0.01", "--neg-risk", "--base-url", "http://127.0.0.1:9"]

CASES: list[tuple[list[str], str]] = [
    # relayer-dry-run: the order's numbers follow the plain-decimal rule and a sane bound
    ([*DRY, "0.45", "1e30", *DRY_OPTS], "argument SIZE"),
    ([*DRY, "0.45", "1000000000001", *DRY_OPTS], "argument SIZE"),
    ([*DRY, "0.45", "NaN", *DRY_OPTS], "argument SIZE"),
    ([*DRY, "0.45", "-10", *DRY_OPTS], "argument SIZE"),
    ([*DRY, "٠.٥", "10", *DRY_OPTS], "argument PRICE"),
    ([*DRY, "1.5", "10", *DRY_OPTS], "argument PRICE"),
    (
        [*DRY, "0.45", "10", "--tick-size", "1e-2", "--private-key", KEY, "--base-url", "http://127.0.0.1:9"],
        "argument --tick-size",
    ),
    ([*DRY, "0.45", "10", *DRY_OPTS, "--timeout", "-1"], "argument --timeout"),
    ([*DRY, "0.45", "10", *DRY_OPTS, "--timeout", "nan"], "argument --timeout"),
    ([*DRY, "0.45", "10", *DRY_OPTS, "--timeout", "100000"], "argument --timeout"),
    ([*DRY, "0.45", "10", *DRY_OPTS, "--base-url", "ftp://x"], "argument --base-url"),
    (["relayer-approve-usdc", "--timeout", "nan"], "argument --timeout"),
    (["relayer-approve-outcome", "--timeout", "-1"], "argument --timeout"),
    (["mock-clob", "--port", "-5"], "argument --port"),
    (["mock-clob", "--confirm-delay", "inf", "--port", "-5"], "argument --confirm-delay"),
    # durations, speeds and rates: finite, positive where zero is nonsense, bounded
    (["run-service", "--config", MISSING, "--duration", "nan"], "argument --duration"),
    (["demo", "--duration", "inf"], "argument --duration"),
    (["replay-book", A_FILE, "--speed", "nan"], "argument --speed"),
    (["replay-book", A_FILE, "--staleness-ms", "0"], "argument --staleness-ms"),
    (["mock-ws", "--port", "0", "--rate", "nan", "--duration", "1"], "argument --rate"),
    (["mock-ws", "--port", "abc"], "argument --port"),
    (["metrics-serve", "--duration", "inf", "--port", "99999"], "argument --duration"),
    (["metrics-serve", "--rate", "nan", "--port", "99999"], "argument --rate"),
    (["ingest-ws", WS_NOWHERE, "123", "--staleness-ms", "-5"], "argument --staleness-ms"),
    (["ingest-ws", WS_NOWHERE, "123", "--staleness-ms", "0"], "argument --staleness-ms"),
    (["ingest-ws", WS_NOWHERE, "123", "--duration", "nan"], "argument --duration"),
    (["ingest-ws", WS_NOWHERE, "123", "--max-frame-bytes", "0"], "argument --max-frame-bytes"),
    (["ingest-ws", WS_NOWHERE, "123", "--first-frame-timeout", "0"], "argument --first-frame-timeout"),
    (["health", "--staleness-ms", "nan"], "argument --staleness-ms"),
    (["refresh-markets", "--timeout", "nan", "--limit", "0"], "argument --timeout"),
    (["refresh-markets", "--backoff", "inf", "--limit", "0"], "argument --backoff"),
    (["mock-gamma", "--synthetic", "-3", "--port", "99999"], "argument --synthetic"),
    (["mock-gamma", "--retry-after", "nan", "--port", "99999"], "argument --retry-after"),
    # database URLs: an empty one is an error (never the default), a bad port is one line
    (["migrate", "--print-sql", "--db-url", ""], "argument --db-url"),
    (["migrate", "--current", "--db-url", "postgresql://u:secretpw@127.0.0.1:abc/db"], "argument --db-url"),
    (["status", "--db-url", "postgresql://u:secretpw@127.0.0.1:99999/db"], "argument --db-url"),
    (["status", "--db-url", "  "], "argument --db-url"),
    # strategy runners: plain decimals only (no exponent, no Unicode digits)
    (["quoter-run-replay", A_FILE, "m", "Yes", "--size", "1e3"], "argument --size"),
    (["dutch-run-replay", A_FILE, "m", "--fee-bps", "١٠"], "argument --fee-bps"),
    (["quoter-run-ws", WS_NOWHERE, "m", "Yes", "--max-messages", "5", "--duration", "nan"], "argument --duration"),
    # smoke-live parses its order numbers like relayer-dry-run
    (["smoke-live", "--config", MISSING, "m", "Yes", "BUY", "0.45", "1e30"], "argument SIZE"),
]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_argument_is_a_one_line_usage_error(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(argv, capsys)
    line = _error_line(err)
    assert code == 2, (code, err)
    assert named in line, line
    assert "Traceback" not in err and "InvalidOperation" not in err and "ValueError" not in err
    assert "secretpw" not in err + out


def test_record_ws_into_a_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["record-ws", WS_NOWHERE, str(tmp_path), "--subscribe", "1"], capsys)
    line = _error_line(err)
    assert code == 2 and "argument out" in line.lower() and "directory" in line, err
    assert "IsADirectoryError" not in err


def test_output_file_whose_directory_is_missing_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["metrics-export", "--no-replay", "--out", MISSING + "/m.prom"], capsys)
    assert code == 2 and "argument --out" in _error_line(err), err
