"""``polybot demo``: the real service on bundled data, no network.

It starts the local exchange doubles (mock market websocket serving the bundled recording's opening
books, mock Gamma, mock CLOB), discovers markets into SQLite under ./var, and runs the real service
three times, each driven by a scripted Telegram session through the offline runner:

1. paper mode: status, quotes, arm, Dutch-book opportunities traded on paper, a manual order; it
   ends by buying a binary market's YES and NO and merging the complete sets (paper ledger);
2. dry-run mode: a real CLOB V2 order built and signed, never posted;
3. live mode against the CLOB double: arm (needs a passing preflight), /order -> confirmation card
   -> Confirm -> the order is posted to the double; a YES and a NO fill there, and /merge -> card ->
   Confirm sends one merge transaction to the chain double (sharing the CLOB double's ledger),
   which mines and confirms it.

Every run counts the same: the paper phase trades the recording's frames in lockstep (each frame
fed to the service's pipeline once the last one's orders are answered), so neither the machine's
speed nor its load decides which opportunity meets which book; ids and nonces differ, counts do not.
The paper phase ends with /chart of the binary market and /chart pnl 7d: the Bot API double saves
both PNGs under VAR_DIR/charts.

It prints the transcript as the person reads it and a summary, and exits 0. Each phase reports what its Dutch groups did
(sent, completed, one-legged by cause, unwound; expected vs realised edge) and the complete sets it
holds ("complete sets N, locked edge X pUSD"), and what it merged ("merged N sets, X pUSD returned"):
the figures as they happened, the data untuned.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from core.control.types import GroupReport
from core.sim.demo_data import DEMO_RECORDING, GAMMA_FIXTURE
from core.types import Mode
from polybot.updates import Update, Updates

if TYPE_CHECKING:
    from core.service import Service
    from core.settings import LoadedSettings
    from core.sim.mock_clob import MockClobServer
    from polybot.sandbox import Values

TRADER = 1001
VIEWER = 1002
STRANGER = 6666
BINARY = "demo-btc-above-150k-2026"
EVENT_MEMBER = "demo-cup-2026-aurora"
AUGMENTED_MEMBER = "demo-city-mayor-2026-alice"
TRADE = {"_trade": True}
"""A script's pause: armed, the strategies trade on the (mock) live feed for the phase's trading time."""
SETTLE = {"_settle": True}
"""A script's pause until no order of ours is in motion (answered, and the fills so far settled:
CONFIRMED or failed), at most SETTLE_S; a resting order is not waited for."""
WARMUP_S = 8.0
FEED_HZ = 250.0
"""The recording's pace: ``--duration`` seconds of paper trading are this many frames a second."""
QUIET_S = 3600.0
"""Books never go stale in a demo phase: the recording's pace, not the wall clock, is the market's."""
CHARTS = "charts"
"""Under the demo's var directory: the PNGs /chart sent (the Bot API double saves them)."""
SETTLE_S = 15.0
LIVE_ASKS = {"Yes": Decimal("0.45"), "No": Decimal("0.50")}
"""The CLOB double's asks on the binary market in the live phase: the live YES and NO orders fill."""


@dataclass
class PhaseResult:
    mode: str
    frames: int = 0
    opportunities: int = 0
    missed: dict[str, int] = field(default_factory=dict)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    groups: GroupReport = field(default_factory=GroupReport)
    complete_sets: Decimal = Decimal(0)
    locked_edge: Decimal = Decimal(0)
    realised_pnl: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)
    merged_sets: Decimal = Decimal(0)
    returned_pusd: Decimal = Decimal(0)

    def lines(self) -> list[str]:
        """The phase's Dutch figures and what it merged, for a terminal."""
        return [
            f"{self.mode}: {self.groups.line()}",
            f"{self.mode}: complete sets {_plain(self.complete_sets)}, locked edge {_plain(self.locked_edge)} pUSD; "
            f"realised {_plain(self.realised_pnl)} pUSD, unrealised outside sets {_plain(self.unrealised_pnl)} pUSD",
            f"{self.mode}: merged {_plain(self.merged_sets)} sets, {_plain(self.returned_pusd)} pUSD returned",
        ]


@dataclass
class DemoSummary:
    phases: list[PhaseResult]
    frames_ingested: int
    opportunities: int
    orders: int
    orders_by_mode: dict[str, int]
    fills: int
    alerts: int
    commands_audited: int
    live_orders_at_venue: int
    seconds: float
    chain_transactions: int = 0  # raw transactions the chain double received (the live merge)
    chain_confirmed: int = 0  # of them mined with status 1
    charts: list[str] = field(default_factory=list)  # the PNGs /chart sent, as saved by the Bot API double


def _settings(exchange: Values, db_url: str, mode: Mode, clob: MockClobServer, rpc_url: str) -> Values:
    from polybot.sandbox import chat_settings, mode_settings

    return {
        **exchange,
        "feed__markets": [BINARY, AUGMENTED_MEMBER],
        "db__url": db_url,
        # live: only the confirmed manual order may reach the venue double, never an automatic leg
        "strategies__dutch__enabled": "false" if mode is Mode.LIVE else "true",
        "strategies__dutch__markets": [EVENT_MEMBER],
        "strategies__spread__enabled": "false",
        "metrics__enabled": "false",
        "service__staleness_ms": str(int(QUIET_S * 1000)),
        **chat_settings({TRADER: "admin", VIEWER: "viewer"}, [TRADER]),
        **mode_settings(mode, clob),
        **({} if mode is Mode.PAPER else {"chain__rpc_url": rpc_url}),
    }


async def _phase(
    mode: Mode,
    loaded: LoadedSettings,
    script: Callable[[Updates], list[Update]],
    *,
    trading_s: float,
    charts_dir: Path,
    stream: Iterator[str],
) -> PhaseResult:
    from bot.fake_api import FakeBotApi
    from polybot.sandbox import SandboxOptions, offline_service

    # the Bot API double keeps every picture the bot sends (/chart) under the demo's var directory
    async with offline_service(loaded, SandboxOptions(api=FakeBotApi(photo_dir=charts_dir))) as sandbox:
        service = sandbox.service
        await sandbox.wait_books_ok(WARMUP_S)  # a slow start still runs the script: the chat says what is missing
        batch: list[Update] = []
        for line in [*script(Updates()), SETTLE]:
            if line is not TRADE and line is not SETTLE:
                batch.append(line)
                continue
            await sandbox.runner.feed(batch)
            batch = []
            if line is TRADE:
                await _lockstep(service, list(itertools.islice(stream, int(trading_s * FEED_HZ))))
            else:
                await _settled(service.engine.in_motion, SETTLE_S)
        await service.bus.drain()
        pnl = await service.control.pnl()
        balance = await service.control.balance()
        return PhaseResult(
            mode=mode.value,
            frames=service.pipeline.stats.frames,
            opportunities=service.counters.opportunities,
            missed=dict(service.counters.missed),
            transcript=[e.as_dict() for e in sandbox.runner.transcript],
            groups=await service.control.groups(),
            complete_sets=pnl.complete_sets,
            locked_edge=pnl.locked_edge,
            realised_pnl=pnl.realised_total,
            unrealised_pnl=pnl.unrealised,
            merged_sets=balance.merged_sets,
            returned_pusd=balance.returned_pusd,
        )


async def _lockstep(service: Service, frames: list[str]) -> None:
    """Trade on ``frames`` in order, each match (the frames sharing one exchange timestamp) fed
    back to back, the next one only when the last one's work is done: its events delivered, every
    order it caused answered (the paper relayer's latency included). The wall clock then decides
    nothing: a slow or busy machine trades the same opportunities against the same books, so
    every run counts the same."""
    on_frame = service.pipeline.on_frame
    for i, text in enumerate(frames):
        on_frame(text, time.time_ns())
        following = frames[i + 1] if i + 1 < len(frames) else None
        if following is not None and _stamp(following) == _stamp(text):
            continue  # the same match: its top of book is checked once it is whole
        while True:
            await service.bus.drain()
            if not service.lifecycle.pending():
                break
            await service.lifecycle.drain(SETTLE_S)


_STAMP = re.compile(r'"timestamp":\s*"?(\d+)')


def _stamp(frame: str) -> str | None:
    match = _STAMP.search(frame)
    return match.group(1) if match else None


async def _settled(in_motion: Callable[[], list[Any]], within_s: float) -> None:
    """Wait (polling, at most ``within_s``) until no order of ours is in motion: every fill settled."""
    deadline = time.monotonic() + within_s
    while in_motion():
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.05)


def _paper_script(u: Updates) -> list[Update]:
    return [
        u.msg(STRANGER, "/status"),
        u.msg(TRADER, "/start"),
        u.msg(TRADER, "/status"),
        u.msg(TRADER, f"/quotes {EVENT_MEMBER}"),
        u.msg(TRADER, "/markets cup"),
        u.msg(VIEWER, "/arm"),
        u.msg(TRADER, "/arm"),
        TRADE,
        u.msg(TRADER, f"/order {BINARY} Yes BUY 0.30 10"),
        u.msg(TRADER, "/order nonsense"),
        u.msg(TRADER, "/orders"),
        u.msg(TRADER, "/positions"),
        u.msg(TRADER, "/pnl"),
        u.msg(TRADER, "/health"),
        u.msg(TRADER, f"/order {BINARY} Yes BUY 0.99 10"),
        u.msg(TRADER, f"/order {BINARY} No BUY 0.99 10"),
        u.msg(TRADER, "/balance"),
        u.msg(TRADER, f"/merge {BINARY}"),
        u.msg(TRADER, "/balance"),
        u.msg(TRADER, f"/chart {BINARY}"),
        u.msg(TRADER, "/chart pnl 7d"),
        u.msg(TRADER, "/disarm"),
    ]


def _dry_run_script(u: Updates) -> list[Update]:
    return [
        u.msg(TRADER, "/status"),
        u.msg(TRADER, "/arm"),
        u.msg(TRADER, f"/order {BINARY} No BUY 0.25 10"),
        u.msg(TRADER, "/disarm"),
    ]


def _live_script(u: Updates) -> list[Update]:
    return [
        u.msg(TRADER, "/preflight"),
        u.msg(TRADER, "/arm"),
        u.msg(TRADER, f"/order {BINARY} Yes BUY 0.20 10"),
        u.tap(VIEWER, "c:$LAST_NONCE"),
        u.tap(TRADER, "c:$LAST_NONCE"),
        u.tap(TRADER, "c:$LAST_NONCE"),
        u.msg(TRADER, f"/order {BINARY} Yes BUY 0.21 10"),
        {"_advance_s": 31},
        u.tap(TRADER, "c:$LAST_NONCE"),
        u.msg(TRADER, "/orders"),
        u.msg(TRADER, f"/order {BINARY} Yes BUY {LIVE_ASKS['Yes']} 10"),
        u.tap(TRADER, "c:$LAST_NONCE"),
        u.msg(TRADER, f"/order {BINARY} No BUY {LIVE_ASKS['No']} 10"),
        u.tap(TRADER, "c:$LAST_NONCE"),
        SETTLE,
        u.msg(TRADER, "/balance"),
        u.msg(TRADER, f"/merge {BINARY}"),
        u.tap(TRADER, "c:$LAST_NONCE"),
        u.msg(TRADER, "/balance"),
        u.msg(TRADER, "/kill"),
    ]


async def run_demo(*, duration_s: float = 6.0, var_dir: Path = Path("./var"), log: TextIO | None = None) -> DemoSummary:
    from core.sim.mock_chain import MockChain
    from core.sim.mock_clob import MockClobServer
    from core.sim.mock_gamma import MockGammaServer
    from core.sim.mock_ws import MockMarketServer
    from polybot.sandbox import Exchange, discover_markets, exchange_settings, load_sandbox_settings

    started = time.monotonic()
    say = (lambda text: (log.write(text + "\n"), log.flush())) if log else (lambda text: None)
    db_path = _fresh_db(var_dir)
    db_url = f"sqlite:///{db_path}"
    books, stream = _split_recording(var_dir)

    gamma = MockGammaServer(markets=GAMMA_FIXTURE)
    # the socket serves the opening books (every phase subscribes and gets them); the trading frames
    # are fed in lockstep (_lockstep), so which opportunity meets which book never depends on timing
    ws = MockMarketServer(recording=books, rate_hz=FEED_HZ, loop_recording=False)
    clob = MockClobServer(confirm_delay_s=0.2)
    async with Exchange(gamma, ws, clob):
        say(f"doubles: market ws {ws.url}, gamma {gamma.url}, clob {clob.url}")
        refreshed = await discover_markets(db_url, gamma.url, clob)
        say(f"markets: {refreshed.seen} discovered from mock Gamma ({refreshed.inserted} stored)")
        # the chain double settles on the CLOB double's ledger: a merge moves what the venue reports
        chain = MockChain.beside(clob, blocks_per_receipt_poll=1)
        await chain.start()
        try:
            say(f"chain double: {chain.url} (chain id {chain.chain_id})")
            await _live_books(clob, db_url)
            exchange = exchange_settings(ws_url=ws.url, gamma_url=gamma.url, clob=clob)
            phases = []
            for mode, script, trading in (
                (Mode.PAPER, _paper_script, duration_s),
                (Mode.DRY_RUN, _dry_run_script, 0.0),
                (Mode.LIVE, _live_script, 0.0),
            ):
                say(f"--- {mode.value} phase ---")
                loaded = load_sandbox_settings(_settings(exchange, db_url, mode, clob, chain.url), var_dir)
                phase = await _phase(
                    mode, loaded, script, trading_s=trading, charts_dir=var_dir / CHARTS, stream=stream
                )
                phases.append(phase)
                for line in phase.lines():
                    say(line)
            summary = await _summary(db_url, phases, clob, started)
            summary.chain_transactions = chain.sent_raw
            summary.chain_confirmed = sum(1 for tx in chain.txs.values() if getattr(tx, "status", None) == 1)
            summary.charts = saved_charts(phases)
            return summary
        finally:
            await chain.close()


async def _live_books(clob: MockClobServer, db_url: str) -> None:
    """Asks on the binary market at the double (live orders at these prices fill there)."""
    from core.markets import load_markets
    from core.registry import MarketRegistry
    from core.store.db import create_engine, session_factory

    engine = create_engine(db_url)
    try:
        market = MarketRegistry(await load_markets(session_factory(engine))).resolve(BINARY)
    finally:
        await engine.dispose()
    for token in market.tokens:
        clob.set_book(token.token_id, bids=[], asks=[(LIVE_ASKS[token.outcome], Decimal(100))])


async def _summary(db_url: str, phases: list[PhaseResult], clob: MockClobServer, started: float) -> DemoSummary:
    from sqlalchemy import func, select

    from core.store import models as m
    from core.store.db import create_engine

    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:

            async def count(table: Any) -> int:
                return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())

            by_mode = (await conn.execute(select(m.Order.mode, func.count()).group_by(m.Order.mode))).all()
            return DemoSummary(
                phases=phases,
                frames_ingested=sum(p.frames for p in phases),
                opportunities=sum(p.opportunities for p in phases),
                orders=await count(m.Order),
                orders_by_mode={str(k): int(v) for k, v in by_mode},
                fills=await count(m.Fill),
                alerts=await count(m.Alert),
                commands_audited=await count(m.CommandAudit),
                live_orders_at_venue=len(clob.requests_to("POST", "/order")),
                seconds=round(time.monotonic() - started, 1),
            )
    finally:
        await engine.dispose()


def _split_recording(var_dir: Path) -> tuple[Path, Iterator[str]]:
    """The bundled recording's opening snapshot frames (written beside the database, for the socket)
    and the frames after them, for ever (traded in lockstep): each replay after the first starts with
    the opening snapshots again, as the deltas that follow assume them (as the socket double does)."""
    import json

    from core.feed.replay import iter_frames

    frames = [text for _, text in iter_frames(DEMO_RECORDING)]
    opening = 0
    for text in frames:
        events = json.loads(text)
        if not all("bids" in e for e in (events if isinstance(events, list) else [events])):
            break
        opening += 1
    lines = DEMO_RECORDING.read_text().splitlines()[:opening]
    books = var_dir / "demo_books.jsonl"
    books.write_text("\n".join(lines) + "\n")
    body = frames[opening:]
    return books, itertools.chain(body, itertools.cycle(frames))


def _fresh_db(var_dir: Path) -> Path:
    """Each demo run starts from an empty database so its summary describes that run only."""
    from polybot.sandbox import fresh_sqlite

    return fresh_sqlite(var_dir / "demo.db")


def summary_dict(summary: DemoSummary) -> dict[str, Any]:
    return asdict(summary)


def saved_charts(phases: list[PhaseResult]) -> list[str]:
    """The files the Bot API double saved for the pictures the bot sent, in the order sent."""
    return [
        str(call["photo"]["photo_path"])
        for phase in phases
        for entry in phase.transcript
        for call in entry["out"]
        if call.get("photo", {}).get("photo_path")
    ]


def _plain(amount: Decimal) -> str:
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
