"""Real processes in tests: the venv's console script, in its own process group, stopped as a group.

A test that starts ``polybot`` through ``uv run`` and kills only what it started leaves the real
service running with parent 1 when the test fails. Here the child is the venv's console script
itself (no wrapper), started with ``start_new_session=True`` so its process group id is its pid;
:func:`stop_group` sends SIGTERM to the group, waits, then SIGKILLs whatever is left and checks
that no member survives. Every wait polls a condition under a ceiling and returns as soon as it
holds.

A command run to completion goes through :func:`run` (or :func:`arun` inside a coroutine) rather
than ``subprocess.run(..., timeout=...)``, which on a timeout kills only its direct child; a server
a test talks to goes through :func:`running`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")
VENV_BIN = Path(sys.executable).parent
TERM_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 15.0


def console_script(name: str = "polybot") -> str:
    """The console script ``name`` of the venv running the tests (not a ``uv run`` wrapper)."""
    path = VENV_BIN / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: install the project into this venv (uv sync)")
    return str(path)


def spawn(argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Start ``argv`` as the leader of a new process group (its pgid is its pid)."""
    _teardown_on_sigterm()
    return subprocess.Popen(list(argv), start_new_session=True, **popen_kwargs)


def _teardown_on_sigterm() -> None:
    """Make a SIGTERM to this process (a CI job's timeout) run the teardowns, as Ctrl-C does.

    By default SIGTERM ends Python at once, no finalizer runs, and the groups started here, which
    no longer share the runner's process group, would not get the signal either: they would run
    on with parent 1. ``signal.default_int_handler`` raises KeyboardInterrupt instead, which
    pytest answers by tearing every fixture down. Only a default disposition is replaced; an
    event loop that handled SIGTERM resets it to the default, so every spawn checks again.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes whose process group is ``pgid`` (Linux /proc)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def wait_until(pred: Callable[[], T], within_s: float, what: str, *, step_s: float = 0.05) -> T:
    """Poll ``pred`` until it returns something true (returned), or fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within_s:g}s waiting for {what}")
        time.sleep(step_s)


def stop_group(
    proc: subprocess.Popen[Any],
    term_timeout_s: float = TERM_TIMEOUT_S,
    kill_timeout_s: float = KILL_TIMEOUT_S,
    *,
    first: signal.Signals = signal.SIGTERM,
) -> int:
    """Send ``first`` (SIGTERM unless told) to the group of ``proc``, wait for the leader, then
    SIGKILL every member still there.

    Returns the leader's exit code. Raises AssertionError when a member outlives the SIGKILL.
    """
    pgid = proc.pid
    if proc.poll() is None:
        _killpg(pgid, first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(term_timeout_s)
    if group_members(pgid) or proc.poll() is None:
        _killpg(pgid, signal.SIGKILL)
    rc = proc.wait(kill_timeout_s)
    wait_until(lambda: not group_members(pgid), kill_timeout_s, f"every process of group {pgid} to exit")
    return rc


def kill9(proc: subprocess.Popen[Any], timeout_s: float = KILL_TIMEOUT_S) -> int:
    """``kill -9`` the whole group now (a crash: nothing runs its shutdown); returns the leader's code."""
    _killpg(proc.pid, signal.SIGKILL)
    rc = proc.wait(timeout_s)
    wait_until(lambda: not group_members(proc.pid), timeout_s, f"every process of group {proc.pid} to exit")
    return rc


@contextlib.contextmanager
def running(argv: Sequence[str], **popen_kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    """A server for the length of a ``with``: :func:`spawn` on entry, :func:`stop_group` on exit
    (also when the body failed). Call :func:`stop_group` inside the body to check its exit code;
    the one on exit then only checks that the group is gone."""
    proc = spawn(argv, **popen_kwargs)
    try:
        yield proc
    finally:
        stop_group(proc)


def _spawn_captured(
    argv: Sequence[str], input: str | bytes | None, popen_kwargs: dict[str, Any]
) -> subprocess.Popen[Any]:
    # like subprocess.run(capture_output=True); stdin is /dev/null, not the terminal, unless input is given
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL if input is None else subprocess.PIPE)
    popen_kwargs.setdefault("stdout", subprocess.PIPE)
    popen_kwargs.setdefault("stderr", subprocess.PIPE)
    return spawn(argv, **popen_kwargs)


def _finish(
    proc: subprocess.Popen[Any], timeout_s: float, input: str | bytes | None, check: bool
) -> subprocess.CompletedProcess[Any]:
    try:
        out, err = proc.communicate(input, timeout_s)
    except subprocess.TimeoutExpired:
        kill9(proc)
        out, err = proc.communicate(timeout=KILL_TIMEOUT_S)  # what it wrote before the kill
        raise subprocess.TimeoutExpired(proc.args, timeout_s, out, err) from None
    except BaseException:  # KeyboardInterrupt, a failing pipe: the group must not outlive us
        kill9(proc)
        raise
    if group_members(proc.pid):  # the leader exited but left something running in its group
        kill9(proc)
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(
    argv: Sequence[str],
    *,
    timeout_s: float,
    input: str | bytes | None = None,
    check: bool = False,
    **popen_kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(argv, capture_output=True, timeout=timeout_s)`` with ``argv`` leading its
    own process group: on a timeout the whole group is SIGKILLed before
    :class:`subprocess.TimeoutExpired` (holding the output so far) is raised, and whatever the
    leader leaves running in its group when it exits is killed too."""
    return _finish(_spawn_captured(argv, input, popen_kwargs), timeout_s, input, check)


async def arun(
    argv: Sequence[str],
    *,
    timeout_s: float,
    input: str | bytes | None = None,
    check: bool = False,
    **popen_kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """:func:`run` from a coroutine: the wait runs in a thread, so the event loop keeps serving
    the doubles the child talks to; a cancelled caller SIGKILLs the group."""
    proc = _spawn_captured(argv, input, popen_kwargs)
    try:
        return await asyncio.to_thread(_finish, proc, timeout_s, input, check)
    except asyncio.CancelledError:
        _killpg(proc.pid, signal.SIGKILL)  # the thread's communicate() then returns and reaps it
        raise


class Lines:
    """Every line a child writes to one of its pipes, read by a thread so each wait is bounded
    (``select`` on a text pipe misses lines already in Python's buffer)."""

    def __init__(self, proc: subprocess.Popen[str], stream: IO[str] | None) -> None:
        assert stream is not None, "start the process with this stream as a PIPE"
        self.proc = proc
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, needle: str, within_s: float) -> str:
        """Wait until ``needle`` was written; fails at once when the child exits first."""
        deadline = time.monotonic() + within_s
        while needle not in (text := self.text):
            if self.proc.poll() is not None and not self._thread.is_alive():
                raise AssertionError(f"the process exited ({self.proc.returncode}) before {needle!r}:\n{text}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {needle!r} within {within_s:g}s; so far:\n{text}")
            time.sleep(0.05)
        return text

    def wait_lines(self, count: int, within_s: float) -> list[str]:
        """The first ``count`` complete lines (without their newlines), once written."""
        deadline = time.monotonic() + within_s
        while len(lines := self.text.splitlines(keepends=True)) < count or not lines[count - 1].endswith("\n"):
            if self.proc.poll() is not None and not self._thread.is_alive():
                raise AssertionError(
                    f"the process exited ({self.proc.returncode}) before {count} line(s):\n{self.text}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(f"fewer than {count} line(s) within {within_s:g}s; so far:\n{self.text}")
            time.sleep(0.05)
        return [line.rstrip("\n") for line in lines[:count]]

    def close(self, timeout_s: float = KILL_TIMEOUT_S) -> str:
        """Everything written, once the pipe is closed (call after the process exited)."""
        self._thread.join(timeout_s)
        return self.text
