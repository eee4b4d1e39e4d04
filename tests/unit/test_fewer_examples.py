"""``-p tests.fewer_examples`` runs a quarter of each Hypothesis test's examples (the feed tests'
second run on the pure-Python path uses it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

SAMPLE = """
from hypothesis import given, settings, strategies as st

CALLS = []

@settings(max_examples=200, database=None)
@given(st.integers())
def test_counted(n):
    CALLS.append(n)

def test_report():
    print("calls", len(CALLS))
"""


def _calls(tmp_path: Path, *plugin: str) -> int:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-s", "-p", "no:cacheprovider", *plugin]
    done = subprocess.run(
        [*cmd, str(tmp_path / "test_sample.py")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return int(done.stdout.split("calls ")[1].split()[0])


def test_a_quarter_of_the_examples_with_the_plugin_and_all_without(tmp_path: Path) -> None:
    fewer = _calls(tmp_path, "-p", "tests.fewer_examples")
    assert 25 <= fewer <= 50
    assert _calls(tmp_path) > 100
