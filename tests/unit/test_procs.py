"""tests/procs.py: a process group started by a test is stopped whole, whatever its members do."""

from __future__ import annotations

import signal
import subprocess

from tests.procs import Lines, group_members, kill9, spawn, stop_group, wait_until

# bash and two children that ignore SIGTERM (an ignored signal stays ignored across exec)
STUBBORN = 'trap "" TERM; sleep 600 & sleep 600 & echo ready >&2; wait'


def _stubborn() -> tuple[subprocess.Popen[str], Lines]:
    proc = spawn(["bash", "-c", STUBBORN], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc, proc.stderr)
    lines.wait_for("ready", 30)
    wait_until(lambda: len(group_members(proc.pid)) == 3, 30, "bash and its two children")
    return proc, lines


def test_stop_group_kills_members_that_ignore_sigterm() -> None:
    proc, lines = _stubborn()
    try:
        rc = stop_group(proc, term_timeout_s=0.5)
    finally:
        if group_members(proc.pid):  # never leave the sleeps behind, even if stop_group is broken
            kill9(proc)
    lines.close()
    assert rc == -signal.SIGKILL
    assert group_members(proc.pid) == []


def test_stop_group_lets_a_process_that_obeys_sigterm_exit_by_itself() -> None:
    proc = spawn(["sleep", "600"], stdin=subprocess.DEVNULL)
    wait_until(lambda: group_members(proc.pid) == [proc.pid], 30, "sleep to start")
    assert stop_group(proc) == -signal.SIGTERM
    assert group_members(proc.pid) == []


def test_kill9_takes_the_whole_group() -> None:
    proc, lines = _stubborn()
    assert kill9(proc) == -signal.SIGKILL
    lines.close()
    assert group_members(proc.pid) == []
