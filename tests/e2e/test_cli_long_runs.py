"""Long-running commands: a progress line on a terminal, and their summary on Ctrl-C / SIGTERM
(issue 19, point 7).

Every command runs as the venv's ``polybot`` in its own process group, stopped as a group. Each
signal is sent once what it must interrupt is observably under way (rows in the database, a
progress line on the terminal): waits poll a condition under a generous ceiling, never a sleep.
The quiet feed is ``polybot mock-ws --rate 2``; the slow Gamma is ``polybot mock-gamma`` with
delayed pages.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_FIXTURES
from tests.procs import Lines, console_script, running, spawn, stop_group, wait_until

POLYBOT = console_script("polybot")
CEILING_S = 60.0  # every wait returns as soon as its condition holds
PROGRESS = re.compile(r"\r(\d+) frames \([\d.,]+/s\), rows \d+ snapshots \+ \d+ deltas \+ \d+ trades, written \d+")


def rows(db: Path, table: str) -> int:
    """Rows ``table`` holds so far (0 while the file or the table does not exist yet)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            return int(conn.execute(f"select count(*) from {table}").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.fixture
def quiet_feed() -> Iterator[tuple[str, list[str]]]:
    """``polybot mock-ws`` at two frames a second: (URL, the asset ids it serves)."""
    argv = [POLYBOT, "mock-ws", "--port", "0", "--assets", "2", "--seed", "5", "--rate", "2"]
    with running(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True) as proc:
        url, assets_line = Lines(proc, proc.stdout).wait_lines(2, CEILING_S)
        yield url, assets_line.split()[1:]


def piped(argv: Sequence[str]) -> subprocess.Popen[str]:
    return spawn([POLYBOT, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str, str]:
    """Send ``sig`` to the command's group; its exit code and everything it wrote."""
    rc = stop_group(proc, first=sig)
    assert proc.stdout is not None and proc.stderr is not None
    return rc, proc.stdout.read(), proc.stderr.read()


class Terminal:
    """A command whose stdin, stdout and stderr are a pseudo-terminal; a thread reads what it shows."""

    def __init__(self, argv: Sequence[str]) -> None:
        master, slave = pty.openpty()
        try:
            self.proc = spawn([POLYBOT, *argv], stdin=slave, stdout=slave, stderr=slave)
        finally:
            os.close(slave)
        self._master = master
        self._shown: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # the command closed its end
                return
            if not chunk:
                return
            with self._lock:
                self._shown.append(chunk)

    @property
    def text(self) -> str:
        with self._lock:
            return b"".join(self._shown).decode(errors="replace")

    def stop(self, sig: signal.Signals) -> tuple[int, str]:
        rc = stop_group(self.proc, first=sig)
        self._thread.join(CEILING_S)
        os.close(self._master)
        return rc, self.text

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            stop_group(self.proc, first=signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# ingest-ws
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ingest_ws_on_a_quiet_feed_prints_its_summary_when_stopped(
    sig: signal.Signals, quiet_feed: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, assets = quiet_feed
    db = tmp_path / "ingest.db"
    proc = piped(["ingest-ws", url, *assets, "--db-url", f"sqlite:///{db}", "--migrate", "--max-messages", "1000"])
    try:  # the books arrived and a few deltas after them: it is ingesting, far from 1000 frames
        wait_until(lambda: rows(db, "book_snapshots") >= 2 and rows(db, "book_deltas") >= 4, CEILING_S, "rows")
    finally:
        rc, out, err = finish(proc, sig)
    first = out.splitlines()[0] if out else ""
    found = re.fullmatch(rf"ingested (\d+) frames in [\d.]+s \([\d.]+/s\), reconnects 0; stopped by {sig.name}", first)
    assert found is not None and 4 <= int(found.group(1)) < 1000, (out, err)
    assert rc == 0, (out, err)
    assert out.splitlines()[1].startswith("rows: 2 snapshots, ") and "writer: " in out
    # what the summary counts is what the database holds: the writer was flushed on the way out
    assert f"rows: 2 snapshots, {rows(db, 'book_deltas')} deltas, {rows(db, 'trades')} trades;" in out
    assert err == "", err  # no terminal: no progress line, nothing but what was there before


def test_ingest_ws_shows_frames_rows_and_rate_on_a_terminal(quiet_feed: tuple[str, list[str]], tmp_path: Path) -> None:
    url, assets = quiet_feed
    db = f"sqlite:///{tmp_path / 'tty.db'}"
    with Terminal(["ingest-ws", url, *assets, "--db-url", db, "--migrate", "--max-messages", "1000"]) as term:
        # the line is redrawn as frames come: wait until it has shown two different counts
        wait_until(lambda: len({m.group(1) for m in PROGRESS.finditer(term.text)}) >= 2, CEILING_S, "progress")
        rc, shown = term.stop(signal.SIGTERM)
    assert rc == 0, shown
    assert re.search(r"\r\ningested \d+ frames in [\d.]+s .*; stopped by SIGTERM\r\n", shown), shown


# --------------------------------------------------------------------------------------------
# record-ws, replay-book, refresh-markets
# --------------------------------------------------------------------------------------------


def test_record_ws_prints_its_summary_when_stopped(quiet_feed: tuple[str, list[str]], tmp_path: Path) -> None:
    url, assets = quiet_feed
    out_file = tmp_path / "rec.jsonl"

    def recorded() -> int:
        return len(out_file.read_text().splitlines()) if out_file.is_file() else 0

    proc = piped(["record-ws", url, str(out_file), "--subscribe", *assets, "--max-messages", "1000"])
    try:
        wait_until(lambda: recorded() >= 4, CEILING_S, "recorded frames")
    finally:
        rc, out, err = finish(proc, signal.SIGTERM)
    assert rc == 0, err
    assert re.fullmatch(
        rf"recorded {recorded()} messages \(\d+ bytes\) in [\d.]+s to {out_file}; reconnects 0; stopped by SIGTERM\n",
        out,
    ), out


def test_a_paced_replay_shows_its_progress_and_stops_with_the_books_so_far() -> None:
    recording = PROJECT_FIXTURES / "recordings" / "demo_feed.jsonl"  # 1503 frames over 30 s
    with Terminal(["replay-book", str(recording), "--speed", "1"]) as term:
        wait_until(lambda: re.search(r"\rreplayed ([3-9]\d|\d{3,}) frames \(", term.text), CEILING_S, "progress")
        rc, shown = term.stop(signal.SIGINT)
    assert rc == 1, shown
    found = re.search(
        rf"{recording}: (\d+) frames \(0 PONG\), 0 unreadable lines, \d+ events; stopped by SIGINT before the end",
        shown,
    )
    assert found is not None and 30 <= int(found.group(1)) < 1503, shown
    assert "decode errors: none" in shown


@pytest.fixture
def slow_gamma() -> Iterator[str]:
    """``polybot mock-gamma`` with 2,000 markets whose pages after the first few answer after 1 s."""
    argv = [POLYBOT, "mock-gamma", "--port", "0", "--synthetic", "2000", "--delay", "100", "--delay-s", "1"]
    with running(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        (url,) = Lines(proc, proc.stdout).wait_lines(1, CEILING_S)
        yield url


def test_refresh_markets_stopped_says_how_far_it_got(slow_gamma: str, tmp_path: Path) -> None:
    db = tmp_path / "markets.db"
    proc = piped(["refresh-markets", slow_gamma, "--db-url", f"sqlite:///{db}", "--migrate", "--limit", "50"])
    try:
        wait_until(lambda: rows(db, "markets") >= 100, CEILING_S, "two pages stored")
    finally:
        rc, out, err = finish(proc, signal.SIGTERM)
    found = re.fullmatch(
        rf"refresh-markets from {slow_gamma} stopped by SIGTERM after (\d+) page\(s\): (\d+) seen, (\d+) inserted, "
        r"0 updated, 0 unchanged, 0 bad \([\d.]+s\); those pages are stored, the scan is not complete\n",
        out,
    )
    assert found is not None, (out, err)
    pages, seen, inserted = (int(g) for g in found.groups())
    assert rc == 1 and 2 <= pages < 40 and seen == inserted == 50 * pages == rows(db, "markets"), (out, err)
    assert "Traceback" not in err and "interrupted" not in err, err
