"""Telegram bot throughput and /status latency through the offline runner.

Everything real except Telegram: the service (control facade, engine, paper relayer, SQLite
file database with the command_audit row every command writes) and the python-telegram-bot
Application, talking to the in-process Bot API double. Each timed update goes the whole way:
``Update.de_json`` -> gate -> per-user rate limit -> handler -> control facade -> render ->
Sender -> Bot API double, plus the audit row and the event-bus drain the runner does.

1. updates per second: N /status updates (default 2,000) from one authorised user, fed one by
   one, with the demo markets (9) and their books from the bundled recording;
2. /status latency with 500 markets tracked: 500 synthetic binary markets registered with the
   registry and a book for each of their 1,000 tokens; p50 / p99 / max per /status update, and
   the same for ``Control.status()`` alone.

    uv run python bench/bot.py [--updates 2000] [--markets 500] [--samples 500] [--profile]

Targets (issue 6): >= 500 updates/s; /status p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.markets import GammaClient, parse_markets, refresh_markets
from core.sim.mock_gamma import MockGammaServer, synthetic_markets
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_engine
from core.types import MarketInfo
from polybot.cli.tools.tgbot_cmd import LocalOptions, LocalSession, local_session

USER = 1001
TARGET_UPDATES_S = 500.0
TARGET_P99_MS = 20.0


def status_update(n: int, user: int = USER) -> dict[str, Any]:
    return {
        "update_id": n,
        "message": {
            "message_id": n,
            "date": 1_793_000_000,
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Bench"},
            "text": "/status",
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
        },
    }


async def prepare_db(path: Path) -> str:
    """A migrated SQLite file with the demo markets, discovered from the Gamma double."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    try:
        await upgrade_engine(engine)
        async with MockGammaServer() as gamma, GammaClient(gamma.url) as client:
            await refresh_markets(session_factory(engine), client)
    finally:
        await engine.dispose()
    return url


def book_frame(info: MarketInfo, ts_ms: int) -> str:
    """One market-channel frame: a 10-level book snapshot for each of the market's tokens."""
    books = []
    for i, tok in enumerate(info.tokens):
        mid = Decimal("0.40") if i == 0 else Decimal("0.60")
        bids = [{"price": str(mid - Decimal("0.01") * k), "size": "100"} for k in range(10, 0, -1)]
        asks = [{"price": str(mid + Decimal("0.01") * k), "size": "100"} for k in range(10, 0, -1)]
        books.append(
            {
                "event_type": "book",
                "market": info.condition_id,
                "asset_id": tok.token_id,
                "timestamp": str(ts_ms),
                "hash": f"{i:040x}",
                "bids": bids,
                "asks": asks,
                "tick_size": str(info.tick_size),
                "last_trade_price": "",
            }
        )
    return json.dumps(books)


def track_synthetic_markets(session: LocalSession, count: int) -> int:
    parsed, stats = parse_markets(synthetic_markets(count, prefix="bench"))
    infos = [gm.info for gm in parsed]
    assert stats.parsed == count and len(infos) == count, stats
    service = session.service
    service.registry.update(infos)
    now = time.time_ns()
    for n, info in enumerate(infos):
        service.pipeline.on_frame(book_frame(info, now // 1_000_000), now + n)
    return len(infos)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def throughput(db_url: str, updates: int, profile: bool) -> tuple[float, LocalSession]:
    opts = LocalOptions(db_url=db_url, env={"POLYBOT_TELEGRAM__COMMANDS_PER_MINUTE": "10000"})
    async with local_session(opts) as session:
        await session.feed([status_update(n) for n in range(1, 51)])  # warm-up: imports, caches, DB
        batch = [status_update(n) for n in range(51, 51 + updates)]
        before = len(session.api.calls)
        profiler = cProfile.Profile() if profile else None
        gc.collect()
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        await session.feed(batch)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
        replies = len(session.api.calls) - before
        assert replies == updates, f"{replies} replies to {updates} updates (rate limited?)"
        assert not session.errors, session.errors
    if profiler:
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(25)
    return updates / elapsed, session


async def status_latency(db_url: str, markets: int, samples: int) -> dict[str, float]:
    opts = LocalOptions(db_url=db_url, no_replay=True, env={"POLYBOT_TELEGRAM__COMMANDS_PER_MINUTE": "10000"})
    async with local_session(opts) as session:
        tracked = track_synthetic_markets(session, markets)
        status = await session.service.control.status()
        assert status.followed.stored >= tracked and status.books.get("ok", 0) >= 2 * tracked, status
        await session.feed([status_update(n) for n in range(1, 21)])
        gc.collect()
        per_update: list[float] = []
        for n in range(21, 21 + samples):
            started = time.perf_counter()
            await session.feed([status_update(n)])
            per_update.append((time.perf_counter() - started) * 1000)
        text = session.api.calls[-1].text or ""
        assert status.followed.text() in text and f"ok {status.books['ok']}" in text, text
        facade: list[float] = []
        for _ in range(samples):
            started = time.perf_counter()
            await session.service.control.status()
            facade.append((time.perf_counter() - started) * 1000)
    return {
        "markets": float(status.followed.stored),
        "books": float(sum(status.books.values())),
        "p50": statistics.median(per_update),
        "p99": pct(per_update, 0.99),
        "max": max(per_update),
        "facade_p50": statistics.median(facade),
        "facade_p99": pct(facade, 0.99),
    }


async def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="polybot-bench-bot-") as tmp:
        db_url = await prepare_db(Path(tmp) / "bot.db")
        rate, _ = await throughput(db_url, args.updates, args.profile)
        lat = await status_latency(db_url, args.markets, args.samples)
    ok_rate = rate >= TARGET_UPDATES_S
    ok_p99 = lat["p99"] < TARGET_P99_MS
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s); SQLite file database")
    print(
        f"updates/s through the offline runner ({args.updates} x /status, audit row each): "
        f"{rate:,.0f}  [target >= {TARGET_UPDATES_S:.0f}: {'ok' if ok_rate else 'MISSED'}]"
    )
    print(
        f"/status with {lat['markets']:.0f} markets / {lat['books']:.0f} books, per update ({args.samples} samples): "
        f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms  "
        f"[target p99 < {TARGET_P99_MS:.0f} ms: {'ok' if ok_p99 else 'MISSED'}]"
    )
    print(f"  of which Control.status() alone: p50 {lat['facade_p50']:.3f} ms, p99 {lat['facade_p99']:.3f} ms")
    return 0 if ok_rate and ok_p99 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=2000, help="/status updates for the throughput run")
    p.add_argument("--markets", type=int, default=500, help="markets tracked for the latency run")
    p.add_argument("--samples", type=int, default=500, help="/status updates timed one by one")
    p.add_argument("--profile", action="store_true", help="cProfile the throughput run (top 25 by cumulative)")
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
