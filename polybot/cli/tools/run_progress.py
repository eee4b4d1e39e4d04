"""What a long-running command shows while it runs (on a terminal) and how it says how long it ran.

:func:`keep_showing` redraws a :class:`polybot.cli.common.Progress` line from the command's live
counters at a steady pace, so a quiet feed still shows its few frames and the time going by; the
line is written only when stderr is a terminal (:class:`~polybot.cli.common.Progress`), so a piped
or logged run prints what it always printed. Ctrl-C and SIGTERM stop the command through
:func:`polybot.cli.common.stop_on_signals`, which lets it print its summary.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polybot.cli.common import Progress

EVERY_S = 0.5
"""How often the line is redrawn."""


async def keep_showing(
    progress: Progress, text: Callable[[], str | None], stop: asyncio.Event, *, every_s: float = EVERY_S
) -> None:
    """Redraw ``progress`` with ``text()`` every ``every_s`` until ``stop`` is set (or the task is
    cancelled); ``text()`` None leaves the line as it is (another part of the command owns it)."""
    if not progress.enabled:
        return
    while not stop.is_set():
        line = text()
        if line is not None:
            progress.update(line, force=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def per_second(count: int, seconds: float) -> str:
    """``2.4/s``; ``1,250/s`` from a thousand a second up."""
    rate = count / max(seconds, 1e-9)
    return f"{rate:,.0f}/s" if rate >= 1000 else f"{rate:.1f}/s"


def took(seconds: float) -> str:
    """12.3 -> '12.3s', 65 -> '1m05s', 3725 -> '1h02m'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"
