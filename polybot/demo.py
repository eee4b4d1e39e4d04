"""``polybot demo``: the real service on bundled data, no network.

It starts the local exchange doubles (mock market websocket replaying a bundled recording, mock
Gamma, mock CLOB), discovers markets into SQLite under ./var, and runs the real service three
times, each driven by a scripted Telegram session through the offline runner:

1. paper mode: status, quotes, arm, Dutch-book opportunities traded on paper, a manual order;
2. dry-run mode: a real CLOB V2 order built and signed, never posted;
3. live mode against the CLOB double: arm (needs a passing preflight), /order -> confirmation card
   -> Confirm -> the order is posted to the double.

It prints the transcript and a summary, and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from core.sim.demo_data import DEMO_RECORDING, GAMMA_FIXTURE, REPO_ROOT

DEMO_CONFIG = REPO_ROOT / "config" / "demo.toml"
# A throwaway key used only against the local CLOB double (never a funded wallet).
DEMO_PRIVATE_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
TRADER = 1001
VIEWER = 1002
STRANGER = 6666
BINARY = "demo-btc-above-150k-2026"
EVENT_MEMBER = "demo-cup-2026-aurora"
AUGMENTED_MEMBER = "demo-city-mayor-2026-alice"


@dataclass
class PhaseResult:
    mode: str
    frames: int = 0
    opportunities: int = 0
    groups_submitted: int = 0
    missed: dict[str, int] = field(default_factory=dict)
    transcript: list[dict[str, Any]] = field(default_factory=list)


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


class _Updates:
    """Builds Telegram Bot API Update objects for the scripted chat."""

    def __init__(self) -> None:
        self.n = 0

    def _user(self, uid: int) -> dict[str, Any]:
        return {"id": uid, "is_bot": False, "first_name": {TRADER: "Trader", VIEWER: "Viewer"}.get(uid, "Stranger")}

    def msg(self, uid: int, text: str) -> dict[str, Any]:
        self.n += 1
        entities = []
        if text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return {
            "update_id": self.n,
            "message": {
                "message_id": self.n,
                "date": int(time.time()),
                "chat": {"id": uid, "type": "private"},
                "from": self._user(uid),
                "text": text,
                "entities": entities,
            },
        }

    def tap(self, uid: int, data: str) -> dict[str, Any]:
        self.n += 1
        return {
            "update_id": self.n,
            "callback_query": {
                "id": str(self.n),
                "from": self._user(uid),
                "chat_instance": "demo",
                "data": data,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": uid, "type": "private"},
                    "text": "card",
                },
            },
        }


def _env(ws: str, gamma: str, clob: str, db_url: str, mode: str, creds: Any = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env.update(
        {
            "POLYBOT_FEED__WS_URL": ws,
            "POLYBOT_FEED__MARKETS": json.dumps([BINARY, AUGMENTED_MEMBER]),
            "POLYBOT_GAMMA__URL": gamma,
            "POLYBOT_CLOB__URL": clob,
            "POLYBOT_DB__URL": db_url,
            # live: only the confirmed manual order may reach the venue double, never an automatic leg
            "POLYBOT_STRATEGIES__DUTCH__ENABLED": "false" if mode == "live" else "true",
            "POLYBOT_STRATEGIES__DUTCH__MARKETS": json.dumps([EVENT_MEMBER]),
            "POLYBOT_STRATEGIES__SPREAD__ENABLED": "false",
            "POLYBOT_TELEGRAM__ENABLED": "true",
            "POLYBOT_TELEGRAM__TOKEN": "123456:OFFLINE-DEMO-TOKEN-NOT-REAL-0000000",
            "POLYBOT_TELEGRAM__USERS": json.dumps([{"id": TRADER, "role": "admin"}, {"id": VIEWER, "role": "viewer"}]),
            "POLYBOT_TELEGRAM__ALERT_CHATS": json.dumps([TRADER]),
            "POLYBOT_METRICS__ENABLED": "false",
            "POLYBOT_SERVICE__MODE": mode,
        }
    )
    if mode != "paper":
        env["POLYBOT_RELAYER__TYPE"] = "real"
        env["POLYBOT_RELAYER__PRIVATE_KEY"] = DEMO_PRIVATE_KEY
        env["POLYBOT_RELAYER__DRY_RUN"] = "true" if mode == "dry-run" else "false"
        if creds is not None:
            env["POLYBOT_RELAYER__API_KEY"] = creds.api_key
            env["POLYBOT_RELAYER__API_SECRET"] = creds.secret
            env["POLYBOT_RELAYER__API_PASSPHRASE"] = creds.passphrase
    return env


async def _phase(
    mode: str,
    env: dict[str, str],
    script: Callable[[_Updates], list[dict[str, Any]]],
    *,
    warmup_s: float,
    trading_s: float,
) -> PhaseResult:
    from bot.app import start_telegram
    from bot.fake_api import FakeBotApi
    from bot.offline import ManualClock, OfflineRunner
    from core.service import Service, ServiceOptions
    from core.settings import load_settings

    loaded = load_settings(DEMO_CONFIG, env=env)
    api = FakeBotApi()
    clock = ManualClock()
    service = Service(
        loaded, ServiceOptions(migrate=True, bot_request=api, with_bot=True, bot_clock=clock, frontend=start_telegram)
    )
    await service.start()
    try:
        await _wait_for_books(service, warmup_s)
        runner = OfflineRunner(service.bot, api, clock)
        updates = _Updates()
        script_lines = script(updates)
        split = next((i for i, u in enumerate(script_lines) if u.get("_trade")), len(script_lines))
        await runner.feed([u for u in script_lines[:split]])
        if split < len(script_lines):
            await asyncio.sleep(trading_s)  # armed: strategies trade on the live (mock) feed
            await runner.feed([u for u in script_lines[split + 1 :]])
        await service.bus.drain()
        result = PhaseResult(
            mode=mode,
            frames=service.pipeline.stats.frames,
            opportunities=service.counters.opportunities,
            groups_submitted=service.counters.groups_submitted,
            missed=dict(service.counters.missed),
            transcript=[e.as_dict() for e in runner.transcript],
        )
    finally:
        await service.stop()
    return result


async def _wait_for_books(service: Any, timeout_s: float) -> None:
    from core.types import BookStatus

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        books = service.processor.books.values()
        if books and all(b.status is BookStatus.OK for b in books):
            return
        await asyncio.sleep(0.05)


def _paper_script(u: _Updates) -> list[dict[str, Any]]:
    return [
        u.msg(STRANGER, "/status"),
        u.msg(TRADER, "/start"),
        u.msg(TRADER, "/status"),
        u.msg(TRADER, f"/quotes {EVENT_MEMBER}"),
        u.msg(TRADER, "/markets cup"),
        u.msg(VIEWER, "/arm"),
        u.msg(TRADER, "/arm"),
        {"_trade": True},
        u.msg(TRADER, f"/order {BINARY} Yes BUY 0.30 10"),
        u.msg(TRADER, "/order nonsense"),
        u.msg(TRADER, "/orders"),
        u.msg(TRADER, "/positions"),
        u.msg(TRADER, "/pnl"),
        u.msg(TRADER, "/health"),
        u.msg(TRADER, "/disarm"),
    ]


def _dry_run_script(u: _Updates) -> list[dict[str, Any]]:
    return [
        u.msg(TRADER, "/status"),
        u.msg(TRADER, "/arm"),
        u.msg(TRADER, f"/order {BINARY} No BUY 0.25 10"),
        u.msg(TRADER, "/disarm"),
    ]


def _live_script(u: _Updates) -> list[dict[str, Any]]:
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
        u.msg(TRADER, "/kill"),
    ]


async def run_demo(*, duration_s: float = 6.0, var_dir: Path = Path("./var"), log: TextIO | None = None) -> DemoSummary:
    from eth_account import Account
    from sqlalchemy import func, select

    from core.markets import GammaClient, load_markets, refresh_markets
    from core.sim.mock_clob import MockClobServer
    from core.sim.mock_clob_state import MockMarket
    from core.sim.mock_gamma import MockGammaServer
    from core.sim.mock_ws import MockMarketServer
    from core.store import models as m
    from core.store.db import create_engine, session_factory
    from core.store.migrate import upgrade_engine

    started = time.monotonic()
    say = (lambda text: (log.write(text + "\n"), log.flush())) if log else (lambda text: None)
    db_path = _fresh_db(var_dir)
    db_url = f"sqlite:///{db_path}"

    gamma = MockGammaServer(markets=GAMMA_FIXTURE)
    ws = MockMarketServer(recording=DEMO_RECORDING, rate_hz=250.0, loop_recording=True)
    clob = MockClobServer(confirm_delay_s=0.2)
    await gamma.start()
    await ws.start()
    await clob.start()
    try:
        say(f"doubles: market ws {ws.url}, gamma {gamma.url}, clob {clob.url}")
        engine = create_engine(db_url)
        try:
            await upgrade_engine(engine)
            sessions = session_factory(engine)
            async with GammaClient(gamma.url) as client:
                refreshed = await refresh_markets(sessions, client)
            say(f"markets: {refreshed.seen} discovered from mock Gamma ({refreshed.inserted} stored)")
            for info in await load_markets(sessions):
                clob.add_market(
                    MockMarket(
                        condition_id=info.condition_id,
                        tokens=tuple((t.token_id, t.outcome) for t in info.tokens),
                        tick_size=info.tick_size,
                        min_order_size=info.min_order_size,
                        neg_risk=info.neg_risk,
                        fee_rate=info.fee_rate,
                        question=info.question,
                    )
                )
        finally:
            await engine.dispose()

        phases = []
        for mode, script, trading in (
            ("paper", _paper_script, duration_s),
            ("dry-run", _dry_run_script, 0.0),
            ("live", _live_script, 0.0),
        ):
            say(f"--- {mode} phase ---")
            creds = clob.creds_for(Account.from_key(DEMO_PRIVATE_KEY).address) if mode == "live" else None
            env = _env(ws.url, gamma.url, clob.url, db_url, mode, creds)
            phases.append(await _phase(mode, env, script, warmup_s=8.0, trading_s=trading))

        engine = create_engine(db_url)
        try:
            async with engine.connect() as conn:

                async def count(table: Any, *where: Any) -> int:
                    q = select(func.count()).select_from(table)
                    for w in where:
                        q = q.where(w)
                    return int((await conn.execute(q)).scalar_one())

                by_mode = {
                    mode: n
                    for mode, n in (await conn.execute(select(m.Order.mode, func.count()).group_by(m.Order.mode))).all()
                }
                summary = DemoSummary(
                    phases=phases,
                    frames_ingested=sum(p.frames for p in phases),
                    opportunities=sum(p.opportunities for p in phases),
                    orders=await count(m.Order),
                    orders_by_mode={str(k): int(v) for k, v in by_mode.items()},
                    fills=await count(m.Fill),
                    alerts=await count(m.Alert),
                    commands_audited=await count(m.CommandAudit),
                    live_orders_at_venue=len(clob.requests_to("POST", "/order")),
                    seconds=round(time.monotonic() - started, 1),
                )
        finally:
            await engine.dispose()
    finally:
        await clob.stop()
        await ws.stop()
        await gamma.stop()
    return summary


def _fresh_db(var_dir: Path) -> Path:
    """Each demo run starts from an empty database so its summary describes that run only."""
    var_dir.mkdir(parents=True, exist_ok=True)
    db_path = var_dir / "demo.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return db_path


def summary_dict(summary: DemoSummary) -> dict[str, Any]:
    return asdict(summary)
