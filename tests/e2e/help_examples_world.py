"""The world ``test_help_examples.py`` runs the examples in: a scratch copy of the project's
``config/`` and ``fixtures/``, the sandboxes the examples name, started as written, and how one
line runs (to completion, or as a server that is checked and stopped).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT
from tests.procs import Lines, run, spawn, stop_group

STEP_TIMEOUT_S = 240.0
"""Ceiling for one example (the demo takes ~20 s on two loaded cores); each returns when it exits."""
READY_S = 120.0
STOP_S = 60.0
SERVERS: dict[str, str | None] = {
    "mock-ws": "assets: ",
    **dict.fromkeys(("mock-gamma", "mock-clob", "mock-chain", "mock-data-api"), "Ctrl-C to stop"),
    "metrics-serve": "replaying ",
}
"""Commands that serve until stopped: ready at their first line, a URL, and at the last of their
start lines: most print the URL before the rest of their start and their SIGTERM handler, and a
SIGTERM in between ends them by the signal rather than by their own clean stop."""
SANDBOX_READY = "\ntry: "
"""The last of the sandbox's start lines (the /order to try): its doubles and service are up."""
BAD_SIGNS = ("Traceback", "(use --debug for details)", "Exception ignored", "Task was destroyed", "never awaited")
_NEEDS = re.compile(r"\s+#\s*while\s+(?P<needs>.+?)\s+runs?\s*$")
_URL = re.compile(r"^(?:https?|wss?)://127\.0\.0\.1:(?P<port>\d+)\b")


def needs_of(line: str) -> tuple[str, ...]:
    """What ``# while A and B run`` at the end of an example says must be running."""
    found = _NEEDS.search(line)
    return tuple(n.strip() for n in found.group("needs").split(" and ")) if found else ()


def bad_signs(out: str) -> list[str]:
    return [sign for sign in BAD_SIGNS if sign in out]


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def nats_answers(host: str = "127.0.0.1", port: int = 4222) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.settimeout(2)
            return conn.recv(4) == b"INFO"
    except OSError:
        return False


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def environment() -> dict[str, str]:
    """A user's shell: no POLYBOT_* of this process, the project's polybot first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    return env


def copy_project(to: Path) -> Path:
    """A working directory like a fresh clone's, for what the examples read and write."""
    to.mkdir(parents=True)
    for name in ("config", "fixtures"):
        shutil.copytree(REPO_ROOT / name, to / name, ignore=shutil.ignore_patterns("__pycache__"))
    return to


def run_line(line: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """``bash -c line`` to completion: (exit code, stdout and stderr together)."""
    done = run(["bash", "-c", line], cwd=cwd, env=env, stderr=subprocess.STDOUT, timeout_s=STEP_TIMEOUT_S)
    return done.returncode, done.stdout.decode(errors="replace")


def serve_line(
    line: str, cwd: Path, env: dict[str, str], *, ready: str | None = None, url_first: bool = True
) -> tuple[int, str]:
    """``bash -c line`` as a server in its own process group: ready once its first line is a
    loopback URL that accepts a connection (``url_first``) and ``ready`` is in its output (when
    given); then SIGTERM to the group. Returns (the exit code on SIGTERM, everything it printed)."""
    proc = spawn(["bash", "-c", line], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT, text=True)  # fmt: skip
    out = Lines(proc, proc.stdout)
    try:
        first = out.wait_lines(1, READY_S)[0] if url_first else None
        if ready is not None:
            out.wait_for(ready, READY_S)
        if first is not None:
            url = _URL.match(first)
            assert url is not None, f"the first line is not a loopback URL: {first!r}"
            assert _answers(int(url.group("port"))), f"nothing accepts a connection at {first}"
    finally:
        rc = stop_group(proc, term_timeout_s=STOP_S)
    return rc, out.close()


@dataclass
class Sandbox:
    line: str
    proc: subprocess.Popen[Any]
    out: Lines


@dataclass
class World:
    cwd: Path
    env: dict[str, str]
    nats: bool
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    started: int = 0
    start_s: float = 0.0

    def copy_of_the_project(self, to: Path) -> Path:
        return copy_project(to)

    def stop(self, line: str) -> str | None:
        """Stop one sandbox as a person does (the end of its input) once nothing needs it any more:
        what it costs the machine is then free for the rest. A problem, or None."""
        box = self.sandboxes.pop(line, None)
        return None if box is None else _stop_sandbox(box)


def _start_sandbox(line: str, cwd: Path, env: dict[str, str]) -> Sandbox:
    # stdin is the terminal chat: a pipe kept open until the end, which closing stops it as Ctrl-D does
    proc = spawn(["bash", "-c", line], cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT, text=True)  # fmt: skip
    return Sandbox(line, proc, Lines(proc, proc.stdout))


def _stop_sandbox(box: Sandbox) -> str | None:
    """End the chat's input; the sandbox stops everything and exits 0. A problem, or None."""
    assert box.proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError):
        box.proc.stdin.close()
    try:
        rc: int | None = box.proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        rc = None
    stop_group(box.proc, term_timeout_s=STOP_S)  # whatever is left in its group
    text = box.out.close()
    if rc != 0 or bad_signs(text):
        return f"{box.line}: exit {rc} at the end of its input, {bad_signs(text)}:\n{tail(text)}"
    return None


@contextlib.contextmanager
def start_world(root: Path, sandboxes: list[str]) -> Iterator[World]:
    """``sandboxes`` (``polybot sandbox …`` lines) started as written in a copy of the project."""
    world = World(copy_project(root / "project"), environment(), nats_answers())
    started = time.monotonic()
    try:
        for line in sandboxes:
            world.sandboxes[line] = _start_sandbox(line, world.cwd, world.env)
        for box in world.sandboxes.values():
            box.out.wait_for(SANDBOX_READY, READY_S)
        world.start_s, world.started = time.monotonic() - started, len(world.sandboxes)
        yield world
    finally:
        problems = [p for line in list(world.sandboxes) if (p := world.stop(line)) is not None]
        assert not problems, "\n".join(problems)
