"""Strategy runners on the command line: ``dutch-run-replay``, ``quoter-run-replay``, ``quoter-run-ws``.

Markets come from the database that ``refresh-markets`` fills (MARKET is a condition id or a
slug; for the Dutch book also a neg-risk group id). The intents go to a recording sink that
prints them (and, for the Dutch book, simulates the fills against the book); nothing is sent to
the venue. Replays print only what the recording determines, so the same file gives the same
bytes every time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import PolybotError, UsageError
from polybot.cli import common
from polybot.cli.common import db_url_arg
from polybot.cli.main import add_command
from polybot.cli.tools.from_config import add_config, need_url, settings_of

if TYPE_CHECKING:
    from polybot.cli.main import Subcommands

if TYPE_CHECKING:  # SQLAlchemy and the feed load only when a command runs
    from sqlalchemy.ext.asyncio import AsyncEngine

    from core.types import MarketInfo, TokenInfo

_DB_HELP = common.DB_URL_HELP


_SHARES = common.order_shares
_HOLDING = common.decimal_arg(-common.MAX_ORDER_SHARES, common.MAX_ORDER_SHARES)
_INVENTORY_CAP = common.decimal_arg(0, common.MAX_ORDER_SHARES)
_PER_SET_USD = common.decimal_arg(0, 1)  # a complete set pays 1 pUSD: a margin above that never trades
_PER_SHARE_USD = common.decimal_arg(0, 1)
_FEE_BPS = common.decimal_arg(0, 10_000, high_open=True)
_TICKS = common.int_arg(1, 10_000)
_SLIPPAGE_TICKS = common.int_arg(0, 10_000)


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "dutch-run-replay",
        help="replay a recording through the Dutch-book strategy; print each opportunity and a summary",
        description=(
            "Replay FILE (a record-ws JSONL recording, or a JSON capture) through the feed's books and run\n"
            "the Dutch book on MARKET after every frame that touched one of its legs: a binary market buys\n"
            "YES + NO; a neg-risk market (or its group id) buys YES of every member of its event (never on\n"
            "augmented events). Each distinct opportunity is printed with its legs, expected and worst-case\n"
            "edge, and a fill simulated against the book at the limit prices; then a summary (frames,\n"
            "opportunities, sets, expected edge). Nothing is sent anywhere. Deterministic: the same file\n"
            "and database give byte-identical output."
        ),
        example=(
            "polybot dutch-run-replay fixtures/recordings/demo_feed.jsonl demo-cup-2026-aurora "
            "--db-url sqlite:///var/sandbox/sandbox.db --safety-margin-usdc 0.01 --fee-bps 20 --slippage-ticks 1"
            "  # while polybot sandbox runs"
        ),
    )
    p.add_argument("file", metavar="FILE", type=Path, help="recording (.jsonl) or JSON capture")
    p.add_argument("market", metavar="MARKET", help="condition id, slug, or neg-risk group id")
    p.add_argument("--db-url", type=common.db_url, default=None, help=_DB_HELP)
    p.add_argument(
        "--safety-margin-usdc",
        type=_PER_SET_USD,
        default=Decimal("0.01"),
        metavar="USD",
        help="worst-case profit required per set after fees (default 0.01)",
    )
    p.add_argument(
        "--fee-bps",
        type=_FEE_BPS,
        default=None,
        metavar="BPS",
        help="replace every market's taker fee rate by BPS/10000 (default: each market's own rate)",
    )
    p.add_argument(
        "--slippage-ticks",
        type=_SLIPPAGE_TICKS,
        default=1,
        metavar="N",
        help="ticks added to each leg's limit price (default 1)",
    )
    p.add_argument("--max-sets", type=_SHARES, default=None, metavar="N", help="cap on the set size (shares per leg)")
    p.add_argument("--order-type", choices=["FOK", "FAK"], default="FOK", help="order type of the legs (default FOK)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=_dutch_run_replay)

    for name, what in (("quoter-run-replay", "replay"), ("quoter-run-ws", "ws")):
        if what == "replay":
            p = add_command(
                sub,
                name,
                help="replay a recording through the spread quoter on one outcome; print quotes, pulls, fills",
                description=(
                    "Replay FILE through the feed's books and run the spread quoter on OUTCOME of MARKET after\n"
                    "every frame that touched its book: each new quote pair, each pull (with its reason) and\n"
                    "each paper fill (a trade print through a resting quote), then a summary. Nothing is sent\n"
                    "anywhere. Deterministic: the same file and database give byte-identical output."
                ),
                example=(
                    "polybot quoter-run-replay fixtures/recordings/demo_feed.jsonl demo-btc-above-150k-2026 Yes "
                    "--db-url sqlite:///var/sandbox/sandbox.db  # while polybot sandbox runs"
                ),
            )
            p.add_argument("file", metavar="FILE", type=Path, help="recording (.jsonl) or JSON capture")
        else:
            p = add_command(
                sub,
                name,
                help="run the spread quoter on a live market-channel websocket (paper: nothing is sent)",
                description=(
                    "Connect to the market channel at URL, subscribe to MARKET's tokens (plus --subscribe ASSET\n"
                    "...), and run the spread quoter on OUTCOME: print each quote pair, pull and paper fill\n"
                    "until --max-messages frames or --duration seconds, then a summary. A dropped socket\n"
                    "pulls the quotes until fresh snapshots arrive. Nothing is sent to the venue."
                ),
                example=(
                    "polybot quoter-run-ws --config var/sandbox/service.toml demo-btc-above-150k-2026 Yes "
                    "--duration 5  # while polybot sandbox runs"
                ),
            )
            p.add_argument(
                "url",
                metavar="URL",
                nargs="?",
                type=common.ws_url,
                help="market-channel websocket URL (ws:// or wss://)",
            )
            add_config(p, "the URL (feed.ws_url) and the database (db.url)")
        p.add_argument("market", metavar="MARKET", help="condition id or slug")
        p.add_argument("outcome", metavar="OUTCOME", help="outcome name (e.g. Yes) or token id")
        p.add_argument("--db-url", type=common.db_url, default=None, help=_DB_HELP)
        p.add_argument("--size", type=_SHARES, default=Decimal(10), help="shares per quote (default 10)")
        p.add_argument("--min-spread-ticks", type=_TICKS, default=3, metavar="N", help="default 3")
        p.add_argument("--requote-ticks", type=_TICKS, default=2, metavar="N", help="default 2")
        p.add_argument(
            "--skew-per-share",
            type=_PER_SHARE_USD,
            default=Decimal(0),
            metavar="USD",
            help="price shift per share held",
        )
        p.add_argument("--max-inventory", type=_INVENTORY_CAP, default=Decimal(100), metavar="N", help="default 100")
        p.add_argument("--min-size", type=_SHARES, default=Decimal(5), metavar="N", help="default 5")
        p.add_argument("--inventory", type=_HOLDING, default=Decimal(0), metavar="N", help="shares held at the start")
        p.add_argument("--allow-short", action="store_true", help="quote asks beyond the shares held")
        p.add_argument("--disarmed", action="store_true", help="run disarmed: every decision is a pull")
        p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
        if what == "ws":
            p.add_argument("--max-messages", type=common.count, default=None, metavar="N", help="stop after N frames")
            p.add_argument("--duration", type=common.duration_s, default=None, metavar="S", help="stop after S seconds")
            common.add_first_frame_timeout(p)
            p.add_argument(
                "--subscribe",
                nargs="+",
                action="extend",
                default=[],
                metavar="ASSET",
                help="more asset ids to subscribe to (the market's own tokens always are)",
            )
            p.set_defaults(func=_quoter_run_ws)
        else:
            p.set_defaults(func=_quoter_run_replay)


# ---------------------------------------------------------------------------- markets


async def _check_schema(engine: AsyncEngine, url: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from core.store.db import connect_error, mask_url
    from core.store.migrate import current_revision, head_revision

    try:
        current = await current_revision(engine)
    except (OSError, SQLAlchemyError) as exc:
        raise connect_error(url, exc) from None
    if current != head_revision():
        state = "has no schema" if current is None else f"is at revision {current}, not the latest"
        raise PolybotError(f"database {mask_url(url)} {state}: run polybot migrate --apply first")


async def _load_dutch_markets(url: str, ref: str) -> list[MarketInfo]:
    """The market (binary) or every member of its neg-risk event, in slug order."""
    from core.markets import MarketLookupError, load_markets, resolve_market
    from core.store.db import create_engine

    engine = create_engine(url)
    try:
        await _check_schema(engine, url)
        try:
            market = await resolve_market(engine, ref)
        except MarketLookupError:
            members = await load_markets(engine, neg_risk_market_id=ref.strip())
            if not members:
                raise
            return members
        if not market.neg_risk:
            return [market]
        if not market.neg_risk_market_id:
            raise PolybotError(f"market {market.slug or market.condition_id} is neg-risk but has no group id")
        members = await load_markets(engine, neg_risk_market_id=market.neg_risk_market_id)
        if len(members) < 2:
            raise PolybotError(
                f"neg-risk event {market.neg_risk_market_id} has {len(members)} stored member(s): "
                "refresh the markets so every member is known"
            )
        return members
    finally:
        await engine.dispose()


async def _load_market(url: str, ref: str) -> MarketInfo:
    from core.markets import resolve_market
    from core.store.db import create_engine

    engine = create_engine(url)
    try:
        await _check_schema(engine, url)
        return await resolve_market(engine, ref)
    finally:
        await engine.dispose()


def _token(market: MarketInfo, outcome: str) -> TokenInfo:
    try:
        return market.token(outcome)
    except KeyError:
        names = ", ".join(t.outcome for t in market.tokens)
        raise UsageError(
            f"market {market.slug or market.condition_id} has no outcome {outcome!r} (outcomes: {names})"
        ) from None


def _replay_frames(path: Path, on_frame: Any) -> tuple[int, list[str], int]:
    """Feed every frame of ``path`` to ``on_frame(recv_ns, frame)``: (frames, bad lines, last recv_ns)."""
    from core.feed.replay import replay

    bad: list[str] = []
    last = [0]

    def frame(recv_ns: int, text: str) -> None:
        last[0] = max(last[0], recv_ns)
        on_frame(recv_ns, text)

    def on_bad_line(line_no: int, reason: str) -> None:
        bad.append(f"line {line_no}: {reason}")

    count = asyncio.run(replay(path, frame, None, on_bad_line=on_bad_line))
    return count, bad, last[0]


def _dump(doc: dict[str, Any]) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


# ---------------------------------------------------------------------------- dutch-run-replay


def _dutch_run_replay(args: argparse.Namespace) -> int:
    from core.fees import rate_from_bps
    from core.strategies.dutch import DutchConfig
    from core.strategies.runner import DutchRunner, RecordingDutchSink, books_ok, fmt
    from core.types import OrderType
    from polybot.cli.tools.replay_groups import replay_groups

    path = common.replay_file(args.file)
    url = db_url_arg(args)
    try:
        cfg = DutchConfig(
            safety_margin_usdc=args.safety_margin_usdc,
            slippage_ticks=args.slippage_ticks,
            fee_rate_override=None if args.fee_bps is None else rate_from_bps(args.fee_bps),
            max_sets=args.max_sets,
            order_type=OrderType(args.order_type),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    markets = asyncio.run(_load_dutch_markets(url, args.market))
    kind = "binary" if len(markets) == 1 else "neg_risk"
    if kind == "binary":
        labels = {t.token_id: t.outcome for t in markets[0].tokens}
    else:
        labels = {m.token("Yes").token_id: m.slug or m.condition_id for m in markets}
    out = sys.stdout
    sink = RecordingDutchSink(write=out.write, rates={}, labels=labels, quiet=args.json)
    runner = DutchRunner(markets, cfg, sink)
    sink.rates = runner.rates()
    augmented = any(m.neg_risk_augmented for m in markets)
    if not args.json:
        name = markets[0].slug if kind == "binary" else (markets[0].neg_risk_market_id or "?")
        out.write(
            f"dutch-run-replay {path}: {kind} {name}, {len(runner.tokens)} legs "
            f"({', '.join(labels[t] for t in runner.tokens)}); margin {cfg.safety_margin_usdc}, "
            f"slippage {cfg.slippage_ticks} ticks, fee {'market rates' if args.fee_bps is None else f'{fmt(args.fee_bps)} bps'}"
            f"{'; AUGMENTED event: never traded' if augmented else ''}\n"
        )
    frames, bad, last_ns = _replay_frames(path, runner.on_frame)
    runner.finish(last_ns)
    s = runner.stats
    groups = replay_groups(sink.records)
    summary = {
        **s.as_dict(),
        "frames": frames,
        "simulated_edge": fmt(sink.simulated_edge),
        "incomplete_fills": sink.incomplete_fills,
        "unreadable_lines": len(bad),
        "decode_errors": runner.processor.counters.total,
        "books_ok_at_end": books_ok(runner.books, runner.tokens),
        "legs": len(runner.tokens),
        "groups": groups.as_dict(),
    }
    if args.json:
        _dump(
            {
                "file": str(path),
                "kind": kind,
                "markets": [m.condition_id for m in markets],
                "augmented": augmented,
                "legs": [{"token_id": t, "label": labels[t]} for t in runner.tokens],
                "opportunities": sink.records,
                "summary": summary,
            }
        )
    else:
        for line in bad[:5]:
            out.write(f"skipped {line}\n")
        out.write(
            f"summary: frames {frames}, evaluations {s.evaluations}, opportunities {s.opportunities} "
            f"(repeats {s.repeats}), sets {fmt(s.sets)}, expected edge {fmt(s.expected_edge)} pUSD, worst-case edge "
            f"{fmt(s.worst_edge)} pUSD, simulated edge {fmt(sink.simulated_edge)} pUSD (incomplete fills "
            f"{sink.incomplete_fills}); decode errors {summary['decode_errors']}, unreadable lines {len(bad)}, "
            f"books ok at end {summary['books_ok_at_end']}/{len(runner.tokens)}; {groups.line()}\n"
        )
    return 0


# ---------------------------------------------------------------------------- quoter


def _quoter_parts(args: argparse.Namespace, market: MarketInfo) -> tuple[Any, Any, Any]:
    from core.strategies.runner import QuoterRunner, RecordingQuoteSink
    from core.strategies.spread import SpreadConfig, SpreadQuoter

    token = _token(market, args.outcome)
    try:
        cfg = SpreadConfig(
            min_spread_ticks=args.min_spread_ticks,
            requote_ticks=args.requote_ticks,
            size=args.size,
            skew_per_share=args.skew_per_share,
            max_inventory=args.max_inventory,
            min_size=args.min_size,
            allow_short=args.allow_short,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sink = RecordingQuoteSink(write=sys.stdout.write, quiet=args.json)
    runner = QuoterRunner(market, token, SpreadQuoter(cfg), sink, inventory=args.inventory, armed=not args.disarmed)
    return token, sink, runner


def _quoter_report(
    args: argparse.Namespace, source: str, market: MarketInfo, token: Any, sink: Any, runner: Any, extra: dict[str, Any]
) -> None:
    from core.strategies.runner import book_summary, fmt

    s = runner.stats
    book = book_summary(runner.book)
    summary = {**s.as_dict(), **extra, "inventory": fmt(runner.inventory), "book": book}
    if args.json:
        _dump(
            {
                "source": source,
                "market": market.condition_id,
                "slug": market.slug,
                "outcome": token.outcome,
                "token_id": token.token_id,
                "events": sink.records,
                "summary": summary,
            }
        )
        return
    sys.stdout.write(
        f"summary: frames {s.frames}, decisions {s.decisions}: quotes {s.quotes}, keeps {s.keeps}, pulls {s.pulls}, "
        f"idle {s.idle}; paper fills {s.fills} (bought {fmt(s.bought)}, sold {fmt(s.sold)}, cash spent "
        f"{fmt(s.cash)} pUSD), inventory {fmt(runner.inventory)}; book {book['status']} {book['best_bid']} / {book['best_ask']}"
        + "".join(f"; {k.replace('_', ' ')} {v}" for k, v in extra.items())
        + "\n"
    )


def _quoter_header(command: str, args: argparse.Namespace, source: str, market: MarketInfo, token: Any) -> None:
    if args.json:
        return
    sys.stdout.write(
        f"{command} {source}: {market.slug or market.condition_id} {token.outcome} "
        f"(tick {market.tick_size}, min size {market.min_order_size}); size {args.size}, "
        f"min spread {args.min_spread_ticks} ticks, requote {args.requote_ticks} ticks, "
        f"skew {args.skew_per_share}/share, max inventory {args.max_inventory}"
        f"{', DISARMED' if args.disarmed else ''}\n"
    )


def _quoter_run_replay(args: argparse.Namespace) -> int:
    path = common.replay_file(args.file)
    url = db_url_arg(args)
    market = asyncio.run(_load_market(url, args.market))
    token, sink, runner = _quoter_parts(args, market)
    _quoter_header("quoter-run-replay", args, str(path), market, token)
    _, bad, last_ns = _replay_frames(path, runner.on_frame)
    runner.finish(last_ns)
    if not args.json:
        for line in bad[:5]:
            sys.stdout.write(f"skipped {line}\n")
    extra = {"decode_errors": runner.processor.counters.total, "unreadable_lines": len(bad)}
    _quoter_report(args, str(path), market, token, sink, runner, extra)
    return 0


def _quoter_run_ws(args: argparse.Namespace) -> int:
    from core.feed.connection import ConnectionEvent, ConnectionState
    from core.feed.ws import MarketFeed

    if args.max_messages is None and args.duration is None:
        raise UsageError("give --max-messages N or --duration S (the quoter otherwise runs forever)")
    config = settings_of(args)
    if config is not None:
        args.url = args.url or config.feed.ws_url
        args.db_url = args.db_url or config.db.url
    args.url = need_url(args.url, "market channel URL")
    url = db_url_arg(args)
    market = asyncio.run(_load_market(url, args.market))
    token, sink, runner = _quoter_parts(args, market)
    _quoter_header("quoter-run-ws", args, args.url, market, token)
    assets = list(dict.fromkeys([*(t.token_id for t in market.tokens), *args.subscribe]))
    last_error: list[str] = []
    first = common.FirstFrames(assets, args.first_frame_timeout)

    def on_frame(text: str, recv_ns: int) -> None:
        runner.on_frame(recv_ns, text)
        books = runner.processor.books
        first.note(a for a in first.missing() if (book := books.get(a)) is not None and book.seeded)

    def on_state(event: ConnectionEvent) -> None:
        if event.state in (ConnectionState.DEAD, ConnectionState.RECONNECTED):
            # frames may have been missed: the books wait for fresh snapshots, the quotes come down
            now = event.at_ns or time.time_ns()
            runner.on_events(runner.processor.mark_awaiting_snapshot(event.asset_ids, now), now)
        if event.state is ConnectionState.DEAD:
            last_error[:] = [event.reason]

    async def run() -> Any:
        feed = MarketFeed(args.url, assets, on_frame, on_state=on_state)
        stop = asyncio.Event()
        watch = asyncio.create_task(first.watch(stop, common.warn))
        try:
            with common.stop_on_signals(stop):  # Ctrl-C / SIGTERM: stop and report what ran
                return await feed.run_until(max_messages=args.max_messages, stop_event=stop, timeout_s=args.duration)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    stats = asyncio.run(run())
    if first.timed_out:
        why = f" (last connection error: {last_error[0]})" if last_error else ""
        raise PolybotError(f"{first.message()} from {args.url}{why}")
    if runner.stats.frames == 0:
        why = f" (last connection error: {last_error[0]})" if last_error else ""
        raise PolybotError(f"no frames received from {args.url}{why}")
    extra = {
        "decode_errors": runner.processor.counters.total,
        "reconnects": stats.reconnects,
        "pongs": stats.pongs,
        "dropped_frames": sum(stats.dropped.values()),
    }
    _quoter_report(args, args.url, market, token, sink, runner, extra)
    return 0
