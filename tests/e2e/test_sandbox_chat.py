"""``polybot sandbox`` as a person uses it (issue 19 point 1): a real subprocess in its own process
group, its terminal chat typed on a stdin pipe, its replies read from stdout.

The chat goes through /arm and a paper order (the order the start lines suggest, as printed),
then ``:mode live`` (the service restarted in live mode over the same doubles, as the product
changes mode: by its configuration), /arm (live: the preflight runs against the doubles), a live
order with its confirmation card, tapped by number, /orders and /kill. The CLOB double is asked
over its socket whether it holds the live order (and, after /kill, that it does not). Ctrl-C
(SIGINT to the group, as a terminal sends it) then stops everything: exit 0, no process left in
the group, the doubles' ports closed. The end of the input (Ctrl-D) stops it the same way.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from core.sim.demo_data import demo_synth_markets
from tests.conftest import REPO_ROOT
from tests.procs import Lines, console_script, group_members, run, spawn, stop_group, wait_until

pytestmark = pytest.mark.slow  # a real process: its start-up alone takes seconds

START_S = 120.0  # ceilings: each wait returns as soon as its line is there
REPLY_S = 60.0
STOP_S = 60.0
BINARY = "demo-btc-above-150k-2026"
LIVE_PRICE = "0.01"  # below every bid of the recording: the order rests, alone at its level
BAD_SIGNS = ("Traceback", "Task was destroyed but it is pending", "never awaited", "Unclosed", "Exception ignored")


class Sandbox:
    def __init__(self, var_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
        env["PYTHONWARNINGS"] = "default"
        self.proc = spawn(
            [console_script("polybot"), "sandbox", "--var-dir", str(var_dir)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out = Lines(self.proc, self.proc.stdout)
        self.err = Lines(self.proc, self.proc.stderr)
        self._mark = 0

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self._mark = len(self.out.text)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def reply(self, needle: str, within_s: float = REPLY_S) -> str:
        """What was printed since the last line typed, once ``needle`` is among it."""
        deadline = time.monotonic() + within_s
        while needle not in (since := self.out.text[self._mark :]):
            if self.proc.poll() is not None:
                raise AssertionError(f"the sandbox exited ({self.proc.returncode}) before {needle!r}:\n{since}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {needle!r} within {within_s:g}s of the last line typed:\n{since}")
            time.sleep(0.05)
        return since


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path / "sandbox")
    try:
        yield box
    finally:
        stop_group(box.proc)
        box.out.close()
        box.err.close()


def _book_level(clob: str, token: str, price: str) -> Decimal | None:
    """The size the CLOB double shows bid at ``price`` for ``token`` (asked over its socket)."""
    book = httpx.get(f"{clob}/book", params={"token_id": token}, timeout=10).json()
    sizes = {Decimal(level["price"]): Decimal(level["size"]) for level in book["bids"]}
    return sizes.get(Decimal(price))


def _listening(url: str) -> bool:
    host, port = re.match(r"\w+://([\d.]+):(\d+)", url).groups()  # type: ignore[union-attr]  # a URL it printed
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, int(port))) == 0


def test_the_terminal_chat_from_paper_to_live_and_ctrl_c(sandbox: Sandbox, tmp_path: Path) -> None:
    start = sandbox.out.wait_for("try: ", START_S)
    clob = re.search(r"CLOB\s+(http://127\.0\.0\.1:\d+)", start).group(1)  # type: ignore[union-attr]
    ws = re.search(r"market websocket\s+(ws://127\.0\.0\.1:\d+)", start).group(1)  # type: ignore[union-attr]
    hint = re.search(r"(/order \S+ Yes BUY [\d.]+ \d+)", start).group(1)  # type: ignore[union-attr]
    assert f"/order {BINARY} Yes BUY" in hint
    config = tmp_path / "sandbox" / "service.toml"
    assert str(config) in start and "THROWAWAY" in (config.parent / "secrets.local.toml").read_text()
    assert "service  paper mode, DISARMED" in start

    sandbox.type("/arm")
    assert "armed (paper mode)" in sandbox.reply("armed")
    sandbox.type(hint)  # the order the start lines suggest, as printed
    paper = sandbox.reply("order:")
    assert "PAPER order: open" in paper, paper

    sandbox.type(":mode live")
    restarted = sandbox.reply("service  live mode, DISARMED", START_S)
    assert "Polybot started in live mode, disarmed" in restarted
    assert 'mode = "live"' in config.read_text()

    sandbox.type("/arm")  # live: the preflight runs against the doubles first
    assert "armed (live mode)" in sandbox.reply("armed")
    sandbox.type(f"/order {BINARY} Yes BUY {LIVE_PRICE} 5")
    card = sandbox.reply("[2 Cancel]")
    assert "LIVE order — confirm" in card and "[1 Confirm] [2 Cancel]" in card
    yes = next(m.token_ids[0] for m in demo_synth_markets() if m.slug == BINARY)
    assert _book_level(clob, yes, LIVE_PRICE) is None  # nothing is sent before the tap
    sandbox.type("1")
    tapped = sandbox.reply("LIVE order: open")
    assert "bot (answers the tap)> LIVE order open" in tapped
    order_id = re.search(r"id: (pb-[0-9a-f]+)", tapped).group(1)  # type: ignore[union-attr]
    assert _book_level(clob, yes, LIVE_PRICE) == Decimal(5)  # the CLOB double holds it

    sandbox.type("/orders")
    orders = sandbox.reply("Open orders")
    assert f"LIVE · BUY 5 Yes @ {LIVE_PRICE}" in orders and order_id[:12] in orders
    assert "[1 Cancel 1" in orders
    sandbox.type("/kill")
    killed = sandbox.reply("killed")
    assert "killed: disarmed, 1 order(s) canceled" in killed
    wait_until(lambda: _book_level(clob, yes, LIVE_PRICE) is None, REPLY_S, "the order gone from the CLOB double")

    os.killpg(sandbox.proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
    rc = sandbox.proc.wait(STOP_S)
    out, err = sandbox.out.close(), sandbox.err.close()
    assert rc == 0, err
    assert not group_members(sandbox.proc.pid), "a process of the sandbox's group survived"
    assert "-- stopped: 1 order(s) posted to the CLOB double" in out
    assert not _listening(clob) and not _listening(ws)
    for bad in BAD_SIGNS:
        assert bad not in err, f"{bad!r} in stderr:\n{err}"


def test_the_end_of_the_input_stops_everything(sandbox: Sandbox) -> None:
    sandbox.out.wait_for("try: ", START_S)
    sandbox.type("/status")
    assert "disarmed" in sandbox.reply("books:")
    assert sandbox.proc.stdin is not None
    sandbox.proc.stdin.close()  # Ctrl-D
    rc = sandbox.proc.wait(STOP_S)
    out, err = sandbox.out.close(), sandbox.err.close()
    assert rc == 0, err
    assert not group_members(sandbox.proc.pid)
    assert "-- stopped: 0 order(s) posted to the CLOB double" in out
    assert "Traceback" not in err


def test_the_readme_s_sandbox_chat_runs_as_written(tmp_path: Path) -> None:
    """README "Going live" step 1: its chat, typed from a file (--script), does what the README says."""
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index("```text\n", readme.index("Rehearse on the sandbox")) + len("```text\n")
    lines = [line.strip() for line in readme[start : readme.index("```", start)].splitlines() if line.strip()]
    assert lines[0] == "/status" and ":mode live" in lines and "1" in lines and lines[-1] == "/kill"
    script = tmp_path / "chat.txt"
    script.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    argv = [console_script("polybot"), "sandbox", "--var-dir", str(tmp_path / "sandbox"), "--script", str(script)]
    done = run(argv, cwd=REPO_ROOT, env=env, text=True, timeout_s=START_S + 4 * REPLY_S)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for said in (
        "armed (paper mode)",
        "PAPER order: open",
        "armed (live mode)",
        "[1 Confirm] [2 Cancel]",
        "LIVE order: open",
        "killed: disarmed, 1 order(s) canceled",
        "-- stopped: 1 order(s) posted to the CLOB double",
    ):
        assert said in out, f"{said!r} not in the chat:\n{out}"
    assert out.index("PAPER order: open") < out.index("LIVE order: open") < out.index("killed")
