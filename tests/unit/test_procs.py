"""tests/procs.py: a process group started by a test is stopped whole, whatever its members do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.procs import Lines, arun, group_members, kill9, run, running, spawn, stop_group, wait_until

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


def _execed(pid: int, name: str) -> bool:
    """The child runs ``name`` (a signal sent between fork and exec is lost with the parent's handlers)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


def test_stop_group_can_lead_with_sigint() -> None:
    proc = spawn(["sleep", "600"], stdin=subprocess.DEVNULL)
    wait_until(lambda: _execed(proc.pid, "sleep"), 30, "sleep to start")
    assert stop_group(proc, first=signal.SIGINT) == -signal.SIGINT


def test_running_stops_the_group_when_the_body_fails() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), running(["sleep", "600"]) as proc:
        wait_until(lambda: group_members(proc.pid) == [proc.pid], 30, "sleep to start")
        raise RuntimeError("the test failed")
    assert proc.returncode == -signal.SIGTERM
    assert group_members(proc.pid) == []


def test_run_is_subprocess_run_with_captured_output() -> None:
    done = run(["bash", "-c", 'read -r x; echo "out $x"; echo err >&2; exit 3'], timeout_s=30, input="in\n", text=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out in\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError):
        run(["false"], timeout_s=30, check=True)


def test_run_on_timeout_kills_the_whole_group_and_keeps_the_output() -> None:
    # bash prints its pid (= its group id), then waits on two children that ignore SIGTERM
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run(["bash", "-c", f"echo $$; {STUBBORN}"], timeout_s=1, text=True)
    pgid = int(info.value.stdout.split()[0])
    assert "ready" in info.value.stderr
    assert group_members(pgid) == []


def test_run_kills_what_the_command_left_running_in_its_group() -> None:
    # the sleep holds no pipe of ours, so the leader's exit ends the run with the sleep still in its group
    done = run(["bash", "-c", "sleep 600 >/dev/null 2>&1 & echo $$"], timeout_s=30, text=True)
    assert done.returncode == 0
    assert group_members(int(done.stdout)) == []


async def test_arun_leaves_the_event_loop_free_for_the_server_the_child_talks_to() -> None:
    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(hello, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = f"import socket; print(socket.create_connection(('127.0.0.1', {port})).makefile().readline().strip())"
    async with server:
        done = await arun([sys.executable, "-c", client], timeout_s=30, text=True)
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr


async def test_a_cancelled_arun_kills_the_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task = asyncio.create_task(arun(["bash", "-c", f"echo $$ > {pid_file}; {STUBBORN}"], timeout_s=600))
    pgid = await asyncio.to_thread(
        wait_until, lambda: pid_file.read_text().strip() if pid_file.exists() else "", 30, "bash's pid"
    )
    await asyncio.to_thread(wait_until, lambda: len(group_members(int(pgid))) == 3, 30, "bash and its two children")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(wait_until, lambda: not group_members(int(pgid)), 30, "the group to be gone")


def test_wait_lines_returns_complete_lines_only() -> None:
    proc = spawn(["printf", "a\\nb\\nc"], stdout=subprocess.PIPE, text=True)
    lines = Lines(proc, proc.stdout)
    assert lines.wait_lines(2, 30) == ["a", "b"]
    with pytest.raises(AssertionError, match="exited"):
        lines.wait_lines(3, 30)  # "c" never got its newline
    assert stop_group(proc) == 0


# the runner in miniature: a group started in a `with running(...)`, then SIGTERM to the runner
RUNNER = """
import sys, time
from tests.procs import running
with running(["sleep", "600"]) as proc:
    print(proc.pid, flush=True)
    time.sleep(600)
"""


def test_a_sigterm_to_the_runner_still_stops_the_groups_it_started() -> None:
    runner = spawn(
        [sys.executable, "-c", RUNNER], cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    out = Lines(runner, runner.stdout)
    (line,) = out.wait_lines(1, 30)
    sleeper = int(line)
    try:
        wait_until(lambda: group_members(sleeper) == [sleeper], 30, "the sleep to start")
        runner.terminate()  # to the runner alone, not to its group: the sleep must be stopped by the runner
        runner.wait(30)
        assert group_members(sleeper) == [], "the sleep outlived the runner"
    finally:
        stop_group(runner)
        if group_members(sleeper):  # never leave it behind, even when the check above failed
            os.killpg(sleeper, signal.SIGKILL)
