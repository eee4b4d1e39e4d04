"""Fault suite plumbing: each scenario fills a :class:`FaultRecord`; the session writes them all
to ``var/faults-results/``, which ``bench/faults_report.py`` prints as the summary table."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.fault_harness import RESULTS, FaultRecord

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
RESULTS_DIR = REPO_ROOT / "var" / "faults-results"


@pytest.fixture
def fault_record(request: pytest.FixtureRequest) -> Iterator[FaultRecord]:
    backend = ""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "db_url" in callspec.params:
        backend = str(callspec.params["db_url"])
    rec = FaultRecord(test=request.node.nodeid, backend=backend)
    RESULTS[request.node.nodeid] = rec
    yield rec


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    rec = RESULTS.get(item.nodeid)
    if rec is None:
        return
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            rec.outcome = "known bug (xfail)" if report.skipped else "BUG FIXED? (xpass)"
            rec.bug = str(report.wasxfail).removeprefix("reason: ")
        else:
            rec.outcome = "ok" if report.passed else "FAILED"
    elif report.when == "setup" and report.skipped:
        rec.outcome = "skipped"
    elif report.failed and rec.outcome == "ok":
        rec.outcome = "FAILED"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """One file per test process: under pytest-xdist every worker writes its own part, tagged with
    the run's id so that bench/faults_report.py merges the parts of the latest run only."""
    if not RESULTS:
        return
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    rows = [r.as_dict() for r in RESULTS.values() if r.scenario]
    part = {"run": run, "results": rows}
    (RESULTS_DIR / f"{worker}.json").write_text(json.dumps(part, indent=2, sort_keys=True, default=str) + "\n")
