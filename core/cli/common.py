"""Helpers shared by command modules: database URL, schema check, progress lines, JSON output."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from core.errors import PolybotError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


def db_url_arg(args: argparse.Namespace) -> str:
    """The user's database URL, or the default; UsageError (exit 2) for an unusable one."""
    from core.store.db import default_db_url, parse_db_url

    url = (getattr(args, "db_url", None) or "").strip() or default_db_url()
    parse_db_url(url)
    return url


async def ensure_schema(engine: AsyncEngine, url: str, *, migrate: bool) -> None:
    """Stop with a clear line unless the schema is at head (or apply migrations when asked to)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.store.db import connect_error, mask_url
    from core.store.migrate import current_revision, head_revision, upgrade_engine

    try:
        current = await current_revision(engine)
    except (OSError, SQLAlchemyError) as exc:
        raise connect_error(url, exc) from None
    head = head_revision()
    if current == head:
        return
    if migrate:
        await upgrade_engine(engine)
        return
    state = "has no schema" if current is None else f"is at revision {current}, not {head}"
    raise PolybotError(f"database {mask_url(url)} {state}: run polybot migrate --apply first (or pass --migrate)")


def print_json(obj: Any) -> None:
    from core.control_types import to_jsonable

    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, sort_keys=True, default=str) + "\n")


class Progress:
    """A single rewritten status line on a TTY (stderr); silent otherwise."""

    def __init__(self, interval_s: float = 0.5, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s
        self._last = 0.0
        self._shown = False

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last >= self.interval_s:
            self._last = now
            self.stream.write("\r" + text[:160].ljust(80))
            self.stream.flush()
            self._shown = True

    def done(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C / SIGTERM set ``stop`` so a long-running command can finish cleanly and print its summary."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (RuntimeError, ValueError):  # pragma: no cover - not on the main thread
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
