"""A local double (or metrics-serve) stopped the moment it has printed its URL stops cleanly.

Whoever reads the URL may stop the process at once (the help-examples test does, and so does a
script); the signal handlers are set before the URL is printed, so that SIGTERM is a clean stop
(exit 0, its "stopped" line), never a death by signal (exit -15, as a loaded CI machine saw)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO_ROOT
from tests.procs import console_script, running, stop_group

DOUBLES = {
    "mock-gamma": [],
    "mock-clob": [],
    "mock-chain": [],
    "mock-data-api": [],
    "mock-ws": ["--recording", "fixtures/recordings/demo_feed.jsonl"],
    "metrics-serve": [],
}


@pytest.mark.parametrize("command", sorted(DOUBLES))
def test_sigterm_right_after_the_url_is_a_clean_stop(command: str) -> None:
    argv = [console_script(), command, "--port", "0", *DOUBLES[command]]
    with running(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("http://") or first.startswith("ws://"), first
        rc = stop_group(proc)
        err = proc.stderr.read() if proc.stderr is not None else ""
    assert rc == 0, f"{command} exited {rc} on SIGTERM right after its URL:\n{err[-600:]}"
    assert "Traceback" not in err
