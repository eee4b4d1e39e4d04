"""docs/acceptance-walkthrough.md is executable: run every command in it and check what it says.

The walkthrough runs in a scratch directory holding copies of ``config/`` and ``fixtures/``, with
the project's ``polybot`` first on PATH, exactly as the page tells a reader to do. Each line of a
```bash block is one command, run by bash; its exit code and output are checked against the
``# expect:`` lines above it. A line ending in ``&`` starts a local double in the background; it
is ready when the file it redirects to holds its first line, and it is stopped at the end.
Nothing reaches past 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.docs_markdown import DOCS_DIR, Step, load_doc, walkthrough_steps
from tests.procs import run, spawn, stop_group

WALKTHROUGH = DOCS_DIR / "acceptance-walkthrough.md"
STEP_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def _environment(clean_env: dict[str, str]) -> dict[str, str]:
    env = dict(clean_env)
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # every step is a new interpreter: the bytecode compiled at the session's start serves them
    # (tests/conftest.py), so no cache prefix that would hide it
    env["NO_COLOR"] = "1"
    return env


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


class _Background:
    def __init__(self) -> None:
        self.procs: list[tuple[Step, subprocess.Popen[bytes], Path]] = []

    def start(self, step: Step, cwd: Path, env: dict[str, str], log: Path) -> None:
        assert step.ready_file is not None
        ready = cwd / step.ready_file
        ready.unlink(missing_ok=True)  # a stale file from an earlier run must not look ready
        with log.open("wb") as err:
            # its own process group: bash and the double it starts are stopped as a whole
            proc = spawn(["bash", "-c", step.command], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=err)
        self.procs.append((step, proc, log))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready.is_file() and "\n" in ready.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(
            f"{WALKTHROUGH.name}:{step.line}: background command never became ready "
            f"({step.ready_file} has no first line; exit {proc.poll()}):\n  {step.command}\n"
            + _tail(log.read_text(errors="replace"))
        )

    def stop_all(self) -> None:
        failures: list[BaseException] = []
        for _step, proc, _log in self.procs:
            try:  # one group that will not die must not keep the others alive
                stop_group(proc, term_timeout_s=STOP_TIMEOUT_S)
            except (AssertionError, subprocess.TimeoutExpired) as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


def _run(step: Step, cwd: Path, env: dict[str, str]) -> None:
    try:
        done = run(["bash", "-c", step.command], cwd=cwd, env=env, stderr=subprocess.STDOUT, timeout_s=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{WALKTHROUGH.name}:{step.line}: no exit within {STEP_TIMEOUT_S:g}s:\n  {step.command}")
    output = done.stdout.decode(errors="replace")
    where = f"{WALKTHROUGH.name}:{step.line}: {step.command}"
    assert done.returncode == step.exit_code, (
        f"{where}\nexit {done.returncode}, the walkthrough says {step.exit_code}; output:\n{_tail(output)}"
    )
    for text in step.contains:
        assert text in output, f"{where}\noutput lacks {text!r}; output:\n{_tail(output)}"
    for text in step.lacks:
        assert text not in output, f"{where}\noutput contains {text!r}, which the walkthrough rules out"


def test_walkthrough_is_substantial() -> None:
    """The page must keep covering the product, not shrink to a trivially passing list."""
    steps = walkthrough_steps(load_doc(WALKTHROUGH))
    commands = {s.command.split("polybot ", 1)[1].split()[0] for s in steps if "polybot " in s.command}
    must = {
        "demo",
        "config",
        "migrate",
        "status",
        "refresh-markets",
        "replay-book",
        "dutch-run-replay",
        "run-service",
        "relayer-dry-run",
        "preflight",
        "smoke-live",
        "tgbot-run-local",
        "metrics-export",
    }
    assert must <= commands, f"the walkthrough no longer runs: {sorted(must - commands)}"
    assert sum(1 for s in steps if s.contains) >= 20, "most steps should check their output"
    assert any(s.exit_code != 0 for s in steps), "the walkthrough should show a failure being reported"


@pytest.mark.slow(seconds=60)
def test_acceptance_walkthrough_runs_offline(tmp_path: Path, clean_env: dict[str, str]) -> None:
    steps = walkthrough_steps(load_doc(WALKTHROUGH))
    work = tmp_path / "walk"
    work.mkdir()
    for name in ("config", "fixtures"):
        shutil.copytree(REPO_ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = _environment(clean_env)
    background = _Background()
    timings: list[tuple[float, int, str]] = []
    try:
        for n, step in enumerate(steps):
            started = time.monotonic()
            if step.background:
                background.start(step, work, env, tmp_path / f"background-{n}.log")
            else:
                _run(step, work, env)
            timings.append((time.monotonic() - started, step.line, step.command[:80]))
    finally:
        background.stop_all()
        # Printed with -s: which steps dominate the run time (WALK_SLOWEST=N lists more).
        slowest = sorted(timings, reverse=True)[: int(os.environ.get("WALK_SLOWEST", "5"))]
        total = sum(t for t, _, _ in timings)
        listing = "; ".join(f"line {ln} {t:.1f}s" for t, ln, _ in slowest)
        sys.stderr.write(f"walkthrough: {len(timings)} steps in {total:.1f}s; slowest: {listing}\n")
    assert len(timings) == len(steps)
