"""Gamma tools: ``refresh-markets`` (discovery into the database) and the ``mock-gamma`` double."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from core.defaults import DEFAULT_GAMMA_URL, GAMMA_MAX_LIMIT
from core.errors import PolybotError, UsageError
from polybot.cli import common
from polybot.cli.common import db_url_arg, stop_on_signals
from polybot.cli.main import add_command
from polybot.cli.tools.from_config import add_config, settings_of

if TYPE_CHECKING:  # the heavy modules (httpx, SQLAlchemy, Alembic) load only when a command runs
    from core.markets import RefreshResult
    from polybot.cli.main import Subcommands

_PAGE_LIMIT = common.int_arg(1, GAMMA_MAX_LIMIT)
_RETRIES = common.int_arg(0, 20)
_BACKOFF = common.float_arg(0, 3600, unit="seconds")
_SYNTHETIC = common.int_arg(1, 100_000)


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "refresh-markets",
        help="scan Gamma /markets/keyset and store markets and tokens (idempotent)",
        description=(
            "Scan Gamma /markets/keyset (cursor paging, at most 100 per page, no offset cap) and\n"
            "upsert the markets and their outcome tokens. Requests are held to Gamma's rate limit\n"
            "(300 per 10 s); a 429 is retried after its Retry-After. A second run over the same data changes nothing and\n"
            "says so. Bad items are counted by reason and skipped. On a terminal a line shows the pages,\n"
            "markets and rate as it goes. Ctrl-C or SIGTERM stops it at once: the pages already stored\n"
            "stay (each is one transaction), the summary says how far it got, and the exit status is 1.\n\n"
            "Filters: by default only tradeable markets (--active --no-closed); --all drops both.\n\n"
            "Schema: the database must be migrated; without --migrate the command stops with\n"
            "'run polybot migrate --apply first' (exit 1) rather than changing the schema silently.\n"
            "Pass --migrate to apply pending migrations first."
        ),
        example=(
            "polybot refresh-markets --config var/sandbox/service.toml --db-url sqlite:///var/markets.db --migrate"
            "  # while polybot sandbox runs"
        ),
    )
    p.add_argument(
        "url",
        nargs="?",
        type=common.http_url,
        default=None,
        metavar="URL",
        help=f"Gamma base URL (default: {DEFAULT_GAMMA_URL})",
    )
    p.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    add_config(p, "the Gamma URL (gamma.url) and the database (db.url)")
    p.add_argument(
        "--active", action=argparse.BooleanOptionalAction, default=True, help="active markets only (default)"
    )
    p.add_argument("--closed", action=argparse.BooleanOptionalAction, default=False, help="closed markets only / open only (default --no-closed)")  # fmt: skip
    p.add_argument("--all", action="store_true", help="no active/closed filter at all")
    p.add_argument("--max-pages", type=common.count, default=None, metavar="N", help="stop after N pages")
    p.add_argument(
        "--limit",
        type=_PAGE_LIMIT,
        default=GAMMA_MAX_LIMIT,
        metavar="N",
        help=f"items per page, 1..{GAMMA_MAX_LIMIT} (default {GAMMA_MAX_LIMIT})",
    )
    p.add_argument(
        "--timeout", type=common.timeout_s, default=10.0, metavar="S", help="HTTP timeout per request (default 10 s)"
    )
    p.add_argument("--retries", type=_RETRIES, default=4, metavar="N", help="retries per request (default 4)")
    p.add_argument(
        "--backoff", type=_BACKOFF, default=0.5, metavar="S", help="first retry delay, doubling (default 0.5 s)"
    )
    p.add_argument("--migrate", action="store_true", help="apply pending database migrations first")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_refresh_cmd)

    p = add_command(
        sub,
        "mock-gamma",
        help="run a local Gamma double (GET /markets, /markets/keyset, /events) for tests and the demo",
        description=(
            "Serve Gamma market items over HTTP on loopback, with Gamma's paging (offset on /markets,\n"
            "cursor on /markets/keyset) and filters.\n"
            "With --port 0 a free port is chosen; the URL is always the first line on stdout.\n"
            "Default data: the project's fixtures/gamma/markets.json. Fault flags make the first\n"
            "requests fail (429 with Retry-After, 500, or a delay) to exercise client retries."
        ),
        example="polybot mock-gamma --port 0 --markets fixtures/gamma/markets.json",
    )
    p.add_argument("--port", type=common.tcp_port, required=True, help="TCP port (0 = pick a free one)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument(
        "--markets",
        type=common.input_file("Gamma markets file"),
        default=None,
        metavar="FILE",
        help="JSON list of Gamma markets or events",
    )
    p.add_argument("--synthetic", type=_SYNTHETIC, default=None, metavar="N", help="serve N generated markets instead")
    p.add_argument(
        "--fail-429", type=common.count_or_zero, default=0, metavar="N", help="answer the first N requests with 429"
    )
    p.add_argument(
        "--retry-after", type=common.delay_s, default=1.0, metavar="S", help="Retry-After of those 429s (default 1)"
    )
    p.add_argument(
        "--fail-500", type=common.count_or_zero, default=0, metavar="N", help="then answer N requests with 500"
    )
    p.add_argument(
        "--delay", type=common.count_or_zero, default=0, metavar="N", help="then delay N responses by --delay-s"
    )
    p.add_argument(
        "--delay-s", type=common.delay_s, default=15.0, metavar="S", help="length of those delays (default 15)"
    )
    p.set_defaults(func=_mock_gamma_cmd)


# --------------------------------------------------------------------------------------------
# refresh-markets
# --------------------------------------------------------------------------------------------


_LOG_EVERY_PAGES = 50  # without a terminal, one progress line per this many pages (a log, not a redraw)


def _progress_text(result: RefreshResult) -> str:
    return (
        f"page {result.pages}: {result.seen} markets ({result.markets_per_s:.0f}/s), {result.inserted} inserted, "
        f"{result.updated} updated, {result.unchanged} unchanged, {result.bad} bad"
    )


def _progress_line(result: RefreshResult) -> None:
    sys.stderr.write(f"\r{_progress_text(result)}   ")
    sys.stderr.flush()


def _progress_log(result: RefreshResult) -> None:
    if result.pages % _LOG_EVERY_PAGES == 0:
        sys.stderr.write(_progress_text(result) + "\n")
        sys.stderr.flush()


def _refresh_cmd(args: argparse.Namespace) -> int:
    from core.markets import GammaClient, MarketFilters, refresh_markets
    from core.store.db import create_engine
    from core.store.migrate import ensure_schema

    filters = MarketFilters(
        active=None if args.all else args.active,
        closed=None if args.all else args.closed,
        limit=args.limit,
        max_pages=args.max_pages,
    )
    config = settings_of(args)
    if config is not None:
        args.url = args.url or config.gamma.url
        args.db_url = args.db_url or config.db.url
    url = db_url_arg(args)
    gamma_url = args.url or DEFAULT_GAMMA_URL
    tty = sys.stderr.isatty() and not args.json
    show = _progress_line if tty else (None if args.json else _progress_log)
    done: list[RefreshResult] = []  # the running totals, as of the last page stored
    signals: list[str] = []

    def progress(result: RefreshResult) -> None:
        done[:] = [result]
        if show is not None:
            show(result)

    async def refresh() -> RefreshResult:
        engine = create_engine(url)
        try:
            await ensure_schema(engine, url, migrate=args.migrate)
            async with GammaClient(
                gamma_url, timeout_s=args.timeout, max_retries=args.retries, backoff_s=args.backoff
            ) as client:
                return await refresh_markets(engine, client, filters, progress)
        finally:
            await engine.dispose()

    async def run() -> RefreshResult | None:
        """The refresh, or None when Ctrl-C / SIGTERM stopped it (a page being stored rolls back)."""
        stop = asyncio.Event()
        with stop_on_signals(stop, signals.append):
            task = asyncio.create_task(refresh())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return None
            return task.result()

    try:
        finished = asyncio.run(run())
    finally:
        if tty:
            sys.stderr.write("\n")
    if finished is None:
        return _interrupted(gamma_url, signals[0] if signals else "a signal", done[0] if done else None, args.json)
    result = finished
    if args.json:
        print(json.dumps({"url": gamma_url, **result.as_dict()}))
        return 0
    summary = (
        f"refreshed markets from {gamma_url}: {result.pages} page(s), {result.seen} seen, "
        f"{result.inserted} inserted, {result.updated} updated, {result.unchanged} unchanged, {result.bad} bad "
        f"({result.elapsed_s:.1f}s, {result.markets_per_s:.0f} markets/s)"
    )
    print(summary)
    if result.bad:
        print("  bad items by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(result.bad_reasons.items())))
    if result.changed == 0 and result.seen:
        print("  nothing changed: the database already matched Gamma")
    if result.stop_reason == "max_pages":
        print(f"  stopped after --max-pages {args.max_pages}; Gamma has more pages")
    return 0


def _interrupted(gamma_url: str, signal_name: str, result: RefreshResult | None, as_json: bool) -> int:
    """The summary of a refresh stopped by a signal: what the pages stored so far hold (exit 1)."""
    if as_json:
        print(json.dumps({"url": gamma_url, "stopped_by": signal_name, **(result.as_dict() if result else {})}))
    elif result is None:
        print(f"refresh-markets from {gamma_url} stopped by {signal_name} before the first page was stored")
    else:
        print(
            f"refresh-markets from {gamma_url} stopped by {signal_name} after {result.pages} page(s): "
            f"{result.seen} seen, {result.inserted} inserted, {result.updated} updated, {result.unchanged} unchanged, "
            f"{result.bad} bad ({result.elapsed_s:.1f}s); those pages are stored, the scan is not complete"
        )
    return 1


# --------------------------------------------------------------------------------------------
# mock-gamma
# --------------------------------------------------------------------------------------------


def _mock_gamma_cmd(args: argparse.Namespace) -> int:
    from core.sim.mock_gamma import MockGammaServer, synthetic_markets

    if args.synthetic is not None and args.markets is not None:
        raise UsageError("give --markets or --synthetic, not both")
    markets: Any = synthetic_markets(args.synthetic) if args.synthetic is not None else args.markets
    try:
        server = MockGammaServer(args.host, args.port, markets)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    server.fail_429(args.fail_429, retry_after=args.retry_after)
    server.fail_500(args.fail_500)
    server.delay(args.delay, delay_s=args.delay_s)

    async def run() -> None:
        try:
            url = await server.start()
        except OSError as exc:
            raise PolybotError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        stop = asyncio.Event()
        try:
            with stop_on_signals(stop):  # before the URL is printed: whoever reads it may stop us at once
                print(url, flush=True)
                sys.stderr.write(f"mock gamma: {len(server.markets)} markets at {url} (Ctrl-C to stop)\n")
                await stop.wait()
        finally:
            await server.stop()

    asyncio.run(run())
    return 0
