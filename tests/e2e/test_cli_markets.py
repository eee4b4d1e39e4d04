"""CLI end to end: `polybot mock-gamma` as a subprocess, `refresh-markets` and `markets` against it."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.procs import Lines, console_script, run, running

START_TIMEOUT_S = 30.0
POLYBOT = console_script("polybot")


@contextmanager
def mock_gamma(*extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`polybot mock-gamma --port 0 ...` in its own process group; yields the URL it prints first."""
    with running(
        [POLYBOT, "mock-gamma", "--port", "0", *extra],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        out, err = Lines(proc, proc.stdout), Lines(proc, proc.stderr)
        (url,) = out.wait_lines(1, START_TIMEOUT_S)
        assert url.startswith("http://127.0.0.1:"), (url, err.text)
        yield url, proc


@pytest.fixture(scope="module")
def gamma_url() -> Iterator[str]:
    with mock_gamma() as (url, _):
        yield url


@pytest.mark.empty_db
def test_refresh_and_list_end_to_end(gamma_url: str, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # not migrated: a clear one-line instruction, exit 1, nothing else done
    assert main(["refresh-markets", gamma_url, "--db-url", db_url]) == 1
    err = capsys.readouterr().err
    assert "has no schema: run polybot migrate --apply first" in err

    assert main(["refresh-markets", gamma_url, "--db-url", db_url, "--migrate", "--all"]) == 0
    out = capsys.readouterr().out
    assert "1 page(s), 10 seen, 10 inserted, 0 updated, 0 unchanged, 0 bad" in out

    assert main(["refresh-markets", gamma_url, "--db-url", db_url, "--all"]) == 0
    out = capsys.readouterr().out
    assert "0 inserted, 0 updated, 10 unchanged" in out and "nothing changed" in out

    assert main(["refresh-markets", gamma_url, "--db-url", db_url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["seen"], summary["inserted"], summary["updated"], summary["unchanged"]) == (9, 0, 0, 9)
    assert summary["stop_reason"] == "end"

    assert main(["markets", "--db-url", db_url]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["SLUG", "OUTCOMES", "TICK", "MIN", "NEG-RISK", "FEE", "STATE", "QUESTION"]
    assert "10 market(s)" in table
    btc = next(line for line in table.splitlines() if line.startswith("demo-btc-above-150k-2026"))
    assert btc.split()[1:7] == ["Yes/No", "0.01", "5", "-", "0.07", "open"]
    assert sum("augmented" in line for line in table.splitlines()) == 4

    assert main(["markets", "demo cup", "--db-url", db_url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["count"] == 4
    assert {m["neg_risk_market_id"] for m in listed["markets"]} != {None}
    assert len({m["neg_risk_market_id"] for m in listed["markets"]}) == 1
    assert all(m["outcomes"] == ["Yes", "No"] and m["fee_rate"] == "0" for m in listed["markets"])

    assert main(["markets", "--open", "--db-url", db_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 9
    assert main(["markets", "nothing-like-this", "--db-url", db_url]) == 0
    assert "no stored market matches 'nothing-like-this'" in capsys.readouterr().out


def test_markets_on_an_empty_database(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refresh-markets", "http://127.0.0.1:9", "--db-url", sqlite_url, "--migrate", "--retries", "0",
                 "--timeout", "2"]) == 1  # fmt: skip
    assert "GET http://127.0.0.1:9/markets" in capsys.readouterr().err
    assert main(["markets", "--db-url", sqlite_url]) == 0
    assert "no markets stored: run polybot refresh-markets first" in capsys.readouterr().out


def test_faults_then_recovery_and_clean_sigterm(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with mock_gamma("--fail-429", "1", "--retry-after", "0.1", "--fail-500", "3") as (url, proc):
        # 2 attempts allowed: a 429 then a 500 -> a clear error naming the URL and the status
        code = main(
            ["refresh-markets", url, "--db-url", sqlite_url, "--migrate", "--retries", "1", "--backoff", "0.05"]
        )
        assert code == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("polybot refresh-markets: GET ")
        assert f"{url}/markets/keyset?limit=100&active=true&closed=false failed after 2 attempts: last HTTP 500" in err
        # the two remaining 500s are retried through
        assert (
            main(["refresh-markets", url, "--db-url", sqlite_url, "--json", "--retries", "3", "--backoff", "0.05"]) == 0
        )
        assert json.loads(capsys.readouterr().out)["inserted"] == 9
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_refresh_markets_as_a_subprocess(gamma_url: str, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    cmd = [POLYBOT, "refresh-markets", gamma_url, "--db-url", sqlite_url, "--migrate"]
    first = run(cmd, cwd=REPO_ROOT, text=True, timeout_s=60)
    assert first.returncode == 0, first.stderr
    assert "9 seen, 9 inserted" in first.stdout
    assert main(cmd[1:]) == 0
    assert "nothing changed" in capsys.readouterr().out


def test_refresh_past_the_old_offset_cap_with_progress(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # 10,100 markets: offset paging stopped at 10,000; the keyset scan reads every one, and
    # without a terminal prints a progress line every 50 pages
    with mock_gamma("--synthetic", "10100") as (url, _):
        assert main(["refresh-markets", url, "--db-url", sqlite_url, "--migrate"]) == 0
    captured = capsys.readouterr()
    assert "101 page(s), 10100 seen, 10100 inserted" in captured.out and "markets/s)" in captured.out
    progress = captured.err.strip().splitlines()
    assert [line.split(":")[0] for line in progress] == ["page 50", "page 100"], captured.err
    assert progress[1].startswith("page 100: 10000 markets (") and "/s), 10000 inserted" in progress[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["refresh-markets", "--limit", "101"], "argument --limit: must be a whole number from 1 to 100"),
        (["refresh-markets", "--max-pages", "0"], "argument --max-pages: must be a whole number from 1"),
        (["refresh-markets", "--db-url", "mysql://x"], "unsupported database URL"),
        (["refresh-markets", "--timeout", "nan"], "argument --timeout: must be a number of seconds"),
        (["refresh-markets", "ftp://gamma"], "argument URL: must start with http:// or https://"),
        (["mock-gamma", "--port", "0", "--markets", "/nonexistent.json"], "Gamma markets file not found"),
        (["mock-gamma", "--port", "70000"], "argument --port: must be a whole number from 0 to 65535"),
        (["mock-gamma", "--port", "0", "--synthetic", "-3"], "argument --synthetic: must be a whole number from 1"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_help_ends_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("refresh-markets", "markets", "mock-gamma"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "example:\n  polybot " + command in out
