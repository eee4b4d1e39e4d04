"""Preflight rows: the check names, rows with redacted details, and the guard every check runs under.

The rows and the report, with their PASS/FAIL/SKIP status, table and JSON forms, are the result
types :class:`core.control.types.PreflightCheck` and :class:`~core.control.types.PreflightReport`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from urllib.parse import urlsplit

from core.control.types import PreflightCheck
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


def passed(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, True, redact(detail))


def failed(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, False, redact(detail))


def skipped(name: str, detail: str) -> PreflightCheck:
    return PreflightCheck(name, False, redact(detail), skipped=True)


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
