"""Preflight results: the check names, PASS/FAIL/SKIP rows with redacted details, the report forms.

A skipped check has ``ok=False, skipped=True`` so that every renderer (CLI, Telegram) that tests
``ok`` first shows it as SKIP, while :attr:`PreflightReport.ok` still counts it as passing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Literal, TypedDict
from urllib.parse import urlsplit

from core.control.types import PreflightCheck, PreflightReport
from core.redact import redact

log = logging.getLogger(__name__)

# Check names, in report order (also what the Telegram /preflight table shows).
CONFIG = "config"
MODE = "mode"
DATABASE = "database"
FEED = "market feed"
CLOB = "clob"
CLOCK = "clock skew"
KEY = "key & funder"
CREDS = "api creds"
SECRETS = "secrets"
ALLOWANCES = "allowances"
BALANCE = "balance"
RISK = "risk limits"
TELEGRAM = "telegram"

Status = Literal["PASS", "FAIL", "SKIP"]


class CheckDict(TypedDict):
    name: str
    status: Status
    ok: bool
    skipped: bool
    detail: str


class ReportDict(TypedDict):
    ok: bool
    failed: list[str]
    checks: list[CheckDict]


def passed(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, True, redact(detail))


def failed(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, False, redact(detail))


def skipped(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, False, redact(detail), skipped=True)


def status_of(check: PreflightCheck) -> Status:
    """``PASS``, ``FAIL`` or ``SKIP``."""
    if check.skipped:
        return "SKIP"
    return "PASS" if check.ok else "FAIL"


def failed_names(report: PreflightReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok and not c.skipped]


def report_as_dict(report: PreflightReport) -> ReportDict:
    return {
        "ok": report.ok,
        "failed": failed_names(report),
        "checks": [
            {"name": c.name, "status": status_of(c), "ok": c.ok, "skipped": c.skipped, "detail": c.detail}
            for c in report.checks
        ],
    }


def report_lines(report: PreflightReport) -> list[str]:
    """The PASS/FAIL/SKIP table and a verdict line, for a terminal."""
    width = max((len(c.name) for c in report.checks), default=0)
    lines = [f"{status_of(c):<4}  {c.name:<{width}}  {c.detail}" for c in report.checks]
    names = failed_names(report)
    skips = sum(1 for c in report.checks if c.skipped)
    if names:
        lines.append(f"preflight FAILED: {len(names)} of {len(report.checks)} checks failed ({', '.join(names)})")
    else:
        lines.append(f"preflight passed ({len(report.checks) - skips} passed, {skips} skipped)")
    return lines


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (a detail is one line)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL: RPC URLs often carry an API key in their path or query."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured URL"
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


async def guard(name: str, coro: Awaitable[PreflightCheck], limit_s: float) -> PreflightCheck:
    """Run one check; an overrun or an unexpected error is that check's failure, never a crash."""
    try:
        return await asyncio.wait_for(coro, limit_s)
    except TimeoutError:
        return failed(name, f"no answer within {limit_s:g} s")
    except Exception as exc:  # one broken check must not hide the others
        log.warning("preflight check %s raised %s", name, type(exc).__name__)
        return failed(name, f"error: {one_line(exc)}")


async def ready(check: PreflightCheck) -> PreflightCheck:
    """A check decided without waiting, in the shape of one that waits (for ``asyncio.gather``)."""
    return check
