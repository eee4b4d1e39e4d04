"""Helpers shared by command modules: argument types, database URL, schema check, progress lines,
JSON output, and the bounded wait for a feed's first frames."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable
from urllib.parse import urlsplit

from core.defaults import DB_URL_ENV, DEFAULT_DB_URL
from core.errors import PolybotError
from core.money import parse_plain_decimal

DB_URL_HELP = (
    f"database URL (default: ${DB_URL_ENV} or {DEFAULT_DB_URL}); sqlite:///PATH or postgresql://user:pass@host:5432/db"
)


def db_url_arg(args: argparse.Namespace) -> str:
    """The user's database URL, or the default; UsageError (exit 2) for an unusable one."""
    from core.control.stored import database_url

    given: str | None = getattr(args, "db_url", None)  # a command without --db-url uses the default
    return database_url(given)


def warn(text: str) -> None:
    """A warning the user reads at once: one line on stderr, the run goes on."""
    sys.stderr.write(f"polybot: warning: {text}\n")
    sys.stderr.flush()


def print_json(obj: Any) -> None:
    from core.control.types import to_jsonable

    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, sort_keys=True, default=str) + "\n")


class Progress:
    """A single rewritten status line on a TTY (stderr); silent otherwise."""

    def __init__(self, interval_s: float = 0.5, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
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
def stop_on_signals(stop: asyncio.Event, on_signal: Callable[[str], None] | None = None) -> Iterator[None]:
    """Ctrl-C / SIGTERM set ``stop`` so a long-running command can finish cleanly and print its summary;
    ``on_signal`` hears each one's name (``SIGTERM``)."""
    loop = asyncio.get_running_loop()
    installed = []

    def handle(sig: signal.Signals) -> None:
        if on_signal is not None:
            on_signal(sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handle, sig)
            installed.append(sig)
        except (RuntimeError, ValueError):  # pragma: no cover - not on the main thread
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


# --------------------------------------------------------------------------- argument types
# Every command takes its arguments through these argparse ``type=`` callables, so a bad value is
# argparse's one-line usage error naming the argument (exit 2), raised before anything runs.
# Numbers are typed by people: the plain-decimal rule of core.money (no exponent, NaN, infinity,
# underscores or Unicode digits), then a range; an open end excludes its bound.

DAY_S = 86_400
MAX_TIMEOUT_S = DAY_S
"""A timeout, delay or interval longer than a day is a typo, not a wish."""
MAX_DURATION_S = 7 * DAY_S
"""--duration bounds a run; without it a long-running command runs until Ctrl-C."""
MAX_COUNT = 1_000_000_000
"""Frames, pages, markets, assets: nothing a command counts reaches a billion."""
MAX_RATE_HZ = 1_000_000
MAX_ORDER_SHARES = Decimal(10**12)
"""Keeps order arithmetic exact (10^12 shares are 10^18 units, inside Decimal's 28 digits); the
risk limits are the real bound and answer anything between them and this with their own reason."""
FIRST_FRAME_TIMEOUT_S = 15.0
"""The venue sends a book per subscribed asset at once; silence this long means it serves none."""

_SHOWN_CHARS = 40


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")


def _range_text(lo: Decimal | int, hi: Decimal | int, low_open: bool, high_open: bool) -> str:
    low, high = (format(Decimal(v).normalize(), "f") for v in (lo, hi))
    if low_open and high_open:
        return f"greater than {low} and less than {high}"
    if low_open:
        return f"greater than {low} and at most {high}"
    if high_open:
        return f"at least {low} and less than {high}"
    return f"from {low} to {high}"


def _checked(
    text: str, low: Decimal | int, high: Decimal | int, *, low_open: bool, high_open: bool, whole: bool, unit: str
) -> Decimal:
    noun = "a whole number" if whole else "a number"
    rule = f"{noun}{f' of {unit}' if unit else ''} {_range_text(low, high, low_open, high_open)}"
    try:
        value = parse_plain_decimal(text)
        if whole and "." in text:
            raise ValueError("not whole")
    except ValueError:
        example = "10" if whole else "0.5"
        raise argparse.ArgumentTypeError(
            f"must be {rule}, written in plain digits like {example}; got {_shown(text)}"
        ) from None
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        raise argparse.ArgumentTypeError(f"must be {rule}, got {_shown(text)}")
    return value


def float_arg(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False, unit: str = ""
) -> Callable[[str], float]:
    """A finite float within the range (argparse ``type=``)."""
    lo, hi = Decimal(str(low)), Decimal(str(high))

    def parse(text: str) -> float:
        return float(_checked(text, lo, hi, low_open=low_open, high_open=high_open, whole=False, unit=unit))

    return parse


def int_arg(low: int, high: int, *, unit: str = "") -> Callable[[str], int]:
    """A whole number within [low, high] (argparse ``type=``)."""

    def parse(text: str) -> int:
        return int(_checked(text, low, high, low_open=False, high_open=False, whole=True, unit=unit))

    return parse


def decimal_arg(
    low: Decimal | int, high: Decimal | int, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], Decimal]:
    """An exact Decimal within the range, for prices, sizes and amounts (argparse ``type=``)."""
    lo, hi = Decimal(low), Decimal(high)

    def parse(text: str) -> Decimal:
        return _checked(text, lo, hi, low_open=low_open, high_open=high_open, whole=False, unit="")

    return parse


timeout_s = float_arg(0, MAX_TIMEOUT_S, low_open=True, unit="seconds")
"""A timeout or interval: greater than 0, at most a day."""
delay_s = float_arg(0, MAX_TIMEOUT_S, unit="seconds")
"""A delay that may be zero (at once), at most a day."""
duration_s = float_arg(0, MAX_DURATION_S, low_open=True, unit="seconds")
"""How long a run lasts: greater than 0, at most a week."""
rate_hz = float_arg(0, MAX_RATE_HZ, unit="frames per second")
"""A pace where 0 means as fast as possible."""
count = int_arg(1, MAX_COUNT)
"""How many of something: at least one."""
count_or_zero = int_arg(0, MAX_COUNT)
staleness_ms = int_arg(1, DAY_S * 1000, unit="milliseconds")
tcp_port = int_arg(0, 65_535)
"""A TCP port; 0 asks the system for a free one."""
price = decimal_arg(0, 1, low_open=True, high_open=True)
"""An outcome price: strictly between 0 and 1 (the tick grid is checked where the market is known)."""
tick_size = decimal_arg(0, 1, low_open=True, high_open=True)
order_shares = decimal_arg(0, MAX_ORDER_SHARES, low_open=True)
"""Shares of one order: greater than 0 (precision and minimums are checked when the order is built)."""


def order_arguments(p: argparse.ArgumentParser, *, market_help: str, outcome_help: str) -> None:
    """MARKET OUTCOME SIDE PRICE SIZE: one order as every command that builds one takes it."""
    p.add_argument("market", metavar="MARKET", help=market_help)
    p.add_argument("outcome", metavar="OUTCOME", help=outcome_help)
    p.add_argument("side", metavar="SIDE", type=str.upper, choices=["BUY", "SELL"])
    p.add_argument("price", metavar="PRICE", type=price, help="limit price on the market's tick grid, e.g. 0.45")
    p.add_argument("size", metavar="SIZE", type=order_shares, help="shares, at most 2 decimals")


def db_url(text: str) -> str:
    """A database URL as typed: never empty (that is not "the default"), and one we can use.

    The error quotes the URL with its password masked (argparse's own message would echo it)."""
    from core.control.stored import database_url

    stripped = text.strip()
    if not stripped:
        raise argparse.ArgumentTypeError(
            "is empty: give sqlite:///PATH or postgresql://user@host:5432/db, or leave the option out for the default"
        )
    try:
        database_url(stripped)
    except PolybotError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return stripped


def _url(text: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise argparse.ArgumentTypeError(f"must start with {wanted} and name a host, got {_shown(text)}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        raise argparse.ArgumentTypeError(f"has a port that is not a number from 0 to 65535: {_shown(text)}") from None
    return text.strip()


def ws_url(text: str) -> str:
    """A websocket URL: ws:// or wss:// with a host."""
    return _url(text, ("ws", "wss"))


def http_url(text: str) -> str:
    """An HTTP(S) URL with a host."""
    return _url(text, ("http", "https"))


def output_file(text: str) -> Path:
    """A file to write: not a directory, in a directory that exists."""
    path = Path(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a file path")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"is a directory, give a file path inside it: {text}")
    parent = path.expanduser().parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"output directory does not exist: {parent}")
    return path


def _file_problem(path: Path, what: str) -> str | None:
    if path.is_dir():
        return f"{what} is a directory, not a file: {path}"
    if not path.is_file():
        return f"{what} not found: {path}"
    return None


def input_file(what: str) -> Callable[[str], Path]:
    """An existing regular file to read; ``what`` names it in the error ("recording", ...)."""

    def parse(text: str) -> Path:
        problem = _file_problem(Path(text), what)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return Path(text)

    return parse


def replay_file(path: Path) -> Path:
    """The recording a replay command reads; exit 1 when it is missing (those commands' contract)."""
    problem = _file_problem(path, "recording")
    if problem:
        raise PolybotError(problem)
    return path


# --------------------------------------------------------------------------- first frames


def add_first_frame_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--first-frame-timeout",
        type=timeout_s,
        default=FIRST_FRAME_TIMEOUT_S,
        metavar="S",
        help=(
            f"stop with exit 1 when no subscribed asset got a frame within S seconds "
            f"(default {FIRST_FRAME_TIMEOUT_S:g}); an asset the feed does not serve is reported"
        ),
    )


@runtime_checkable
class OneAsset(Protocol):
    """A feed event about one asset (a book, a trade, a tick-size change)."""

    asset_id: str


@runtime_checkable
class ManyAssets(Protocol):
    """A feed event about several assets (a burst of price changes)."""

    asset_ids: Sequence[str]


class FirstFrames:
    """Which subscribed assets have had a frame, and a watchdog for those that never do.

    A feed that never serves an asset sends nothing for it, so a run bounded only by
    --max-messages would wait forever in silence. :meth:`watch` shows the wait on a TTY and,
    after ``timeout_s``, stops the run when no asset got a frame."""

    def __init__(self, assets: Sequence[str], timeout_s: float) -> None:
        self.assets = list(dict.fromkeys(assets))
        self.timeout_s = timeout_s
        self.seen: set[str] = set()
        self.timed_out = False

    def note(self, asset_ids: Iterable[str]) -> None:
        self.seen.update(asset_ids)

    def note_events(self, events: Iterable[object]) -> None:
        """Record the assets that feed events (``asset_id`` / ``asset_ids``) concern."""
        for event in events:
            if isinstance(event, OneAsset):
                self.seen.add(event.asset_id)
            if isinstance(event, ManyAssets):
                self.seen.update(event.asset_ids)

    def missing(self) -> list[str]:
        return [a for a in self.assets if a not in self.seen]

    def message(self) -> str:
        missing = self.missing()
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        return f"no frames for {shown} after {self.timeout_s:g}s"

    async def watch(self, stop: asyncio.Event, warn: Callable[[str], None], progress: Progress | None = None) -> None:
        """At ``timeout_s``: set ``stop`` (and :attr:`timed_out`) when no asset got a frame; when
        only some did, ``warn`` names the others at once and the run goes on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while not stop.is_set():
            left = deadline - loop.time()
            if left <= 0:
                break
            if progress is not None and not self.seen:
                waited = self.timeout_s - left
                progress.update(
                    f"waiting for the first frames of {len(self.assets)} asset(s): {waited:.0f}s of {self.timeout_s:g}s",
                    force=True,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(left, 0.5))
        if stop.is_set():
            return
        if not self.seen:
            self.timed_out = True
            stop.set()
        elif self.missing():
            warn(self.message() + " (is each one a token id this feed serves?); the others go on")
