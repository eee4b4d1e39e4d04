"""kill -9 of ``polybot run-service`` with orders in flight, then a restart on the same database.

The service runs as a real subprocess; everything it talks to runs in the test process over
loopback: the market websocket double (demo recording), the Gamma and CLOB doubles, and a Telegram
Bot API double over HTTP, which the service polls exactly as it would poll Telegram. The test is
the trader: it arms and places orders through chat, confirms them, and kills the process with
SIGKILL while an order is in flight (the venue accepted it; the answer never arrived).

While the service is dead the venue moves on (a resting order is partly filled). On restart the
service must start disarmed, read the venue (open orders, trades) before anything else, settle
every order it had, never re-post one, and hold the venue's positions.

Each scenario runs once per module (two service processes, a few seconds) and the tests below
check its observations.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.money import from_units
from tests.faults.fake_telegram_http import FakeTelegramHttp
from tests.faults.fault_harness import (
    BINARY,
    DEMO_CONFIG,
    TEST_PRIVATE_KEY,
    TRADER,
    TapMarketServer,
    TcpProxy,
    Updates,
    _exchange,
    query,
)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "7412589630:AAH3kL9mQ2xR7vT1yU5wE8oP4iS6dF0gJ2c"  # shaped like a real one; the double checks it
STEP_TIMEOUT = 20.0


@dataclass
class Observed:
    mode: str
    before: dict[str, Any] = field(default_factory=dict)  # orders/positions in the DB at the kill
    after: dict[str, Any] = field(default_factory=dict)  # the same after the restart
    venue: dict[str, Any] = field(default_factory=dict)
    requests_after_restart: list[tuple[str, str]] = field(default_factory=list)
    audit_after_restart: list[str] = field(default_factory=list)
    replies_after_restart: list[str] = field(default_factory=list)
    posts_before: int = 0
    posts_after: int = 0
    killed_rc: int | None = None
    stopped_rc: int | None = None
    stderr: str = ""


class ServiceProcess:
    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._fh = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "core.cli.main",
            "run-service",
            "--config",
            str(self.config),
            "--migrate",
            cwd=REPO_ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._fh,
            stderr=self._fh,
        )

    async def kill9(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        rc = await asyncio.wait_for(self.proc.wait(), 10)
        self._fh.close()
        return rc

    async def terminate(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            rc = await self.proc.wait()
        self._fh.close()
        return rc


async def _wait(pred: Any, within_s: float, what: str, proc: ServiceProcess | None = None) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if proc is not None and proc.proc is not None and proc.proc.returncode is not None:
            raise AssertionError(f"the service exited ({proc.proc.returncode}) while waiting for {what}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within_s}s waiting for {what}")


async def _db(db_url: str, token: str) -> dict[str, Any]:
    orders = await query(db_url, "SELECT client_order_id, status, filled_size, price FROM orders ORDER BY id")
    fills = await query(db_url, "SELECT client_order_id, status, size, price FROM fills ORDER BY id")
    pos = await query(db_url, "SELECT size, realised_pnl FROM positions WHERE token_id = :t", t=token)
    state = await query(db_url, "SELECT value FROM state WHERE key = 'armed'")
    return {
        "orders": {str(r[0]): (str(r[1]), from_units(int(r[2])), from_units(int(r[3]))) for r in orders},
        "fills": [(str(r[0]), str(r[1]), from_units(int(r[2])), from_units(int(r[3]))) for r in fills],
        "position": from_units(int(pos[0][0])) if pos else Decimal(0),
        "realised": from_units(int(pos[0][1])) if pos else Decimal(0),
        "armed_state": state[0][0] if state else None,
    }


def _env(values: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    for key, value in values.items():
        env["POLYBOT_" + key.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


async def _scenario(mode: str, tmp: Path) -> Observed:
    obs = Observed(mode)
    stack = contextlib.AsyncExitStack()
    await stack.__aenter__()
    try:
        db_url = f"sqlite:///{tmp / 'polybot.db'}"
        ws = TapMarketServer(
            recording=REPO_ROOT / "fixtures" / "recordings" / "demo_feed.jsonl", rate_hz=50.0, loop_recording=True
        )
        await ws.start()
        stack.push_async_callback(ws.stop)
        gamma, clob = await _exchange(db_url, stack, {"confirm_delay_s": 0.2, "heartbeat_timeout_s": 600})
        user_proxy = TcpProxy(clob.ws_port)  # lets the test cut the user channel
        await user_proxy.start()
        stack.push_async_callback(user_proxy.stop)
        telegram = FakeTelegramHttp(TOKEN)
        await telegram.start()
        stack.push_async_callback(telegram.stop)
        values: dict[str, Any] = {
            "db__url": db_url,
            "feed__ws_url": ws.url,
            "feed__user_ws_url": user_proxy.url("ws", "/ws/user"),
            "feed__markets": [BINARY],
            "gamma__url": gamma.url,
            "clob__url": clob.url,
            "clob__timeout_s": "2",
            "metrics__enabled": "false",
            "strategies__dutch__enabled": "false",
            "strategies__spread__enabled": "false",
            "telegram__enabled": "true",
            "telegram__token": TOKEN,
            "telegram__base_url": telegram.base_url,
            "telegram__users": [{"id": TRADER, "role": "admin"}],
            "telegram__alert_chats": [TRADER],
            "service__mode": "paper",
            "service__health_ping_minutes": "0",
            "service__cancel_on_shutdown": "false",
        }
        if mode == "live":
            from eth_account import Account

            creds = clob.creds_for(Account.from_key(TEST_PRIVATE_KEY).address)
            values.update(
                {
                    "service__mode": "live",
                    "relayer__type": "real",
                    "relayer__dry_run": "false",
                    "relayer__private_key": TEST_PRIVATE_KEY,
                    "relayer__api_key": creds.api_key,
                    "relayer__api_secret": creds.secret,
                    "relayer__api_passphrase": creds.passphrase,
                }
            )
        config = tmp / "service.toml"
        shutil.copy(DEMO_CONFIG, config)
        env = _env(values)
        log = tmp / "service.log"
        from core.markets import load_markets
        from core.store.db import create_engine, session_factory

        engine = create_engine(db_url)
        try:
            markets = await load_markets(session_factory(engine))
        finally:
            await engine.dispose()
        binary = next(m for m in markets if m.slug == BINARY)
        yes = binary.token("Yes").token_id
        u = Updates()

        async def say(text: str, expect: str) -> Any:
            mark = len(telegram.calls)
            telegram.push(u.msg(TRADER, text))
            return await telegram.wait_sent(expect, STEP_TIMEOUT, after=mark)

        async def confirm(card: Any, expect: str) -> Any:
            nonce = next(b for b in card.buttons() if b.startswith("c:"))
            mark = len(telegram.calls)
            telegram.push(u.tap(TRADER, nonce))
            return await telegram.wait_sent(expect, STEP_TIMEOUT, after=mark)

        # ---- first life ---------------------------------------------------------------------
        first = ServiceProcess(config, env, log)
        await first.start()
        stack.push_async_callback(first.terminate)
        await telegram.wait_sent("Polybot started", STEP_TIMEOUT)
        await say("/arm", "armed")
        if mode == "live":
            card = await say(f"/order {BINARY} Yes BUY 0.20 10", "LIVE order")
            await confirm(card, "<b>live</b>")  # A: rests at the venue
            clob.set_book(yes, [], [(Decimal("0.30"), Decimal(100))])
            card = await say(f"/order {BINARY} Yes BUY 0.30 10", "LIVE order")
            await confirm(card, "<b>filled</b>")  # B: takes the ask
            await _wait(lambda: _db_position(db_url, yes, Decimal(10)), STEP_TIMEOUT, "B's confirmed fill", first)
            clob.inject("timeout_after_accept", delay_s=60)
            card = await say(f"/order {BINARY} Yes BUY 0.21 10", "LIVE order")
            # the user channel goes quiet first, so nothing but the (lost) answer could tell the
            # service what became of C: it dies with C's row still 'new'
            user_proxy.block(600)
            user_proxy.cut()
            nonce = next(b for b in card.buttons() if b.startswith("c:"))
            posts = len(clob.requests_to("POST", "/order"))
            telegram.push(u.tap(TRADER, nonce))  # C: accepted by the venue, answer delayed
            await _wait(lambda: len(clob.requests_to("POST", "/order")) > posts, STEP_TIMEOUT, "C's POST", first)
            await _wait(lambda: len(clob.orders) == 3, STEP_TIMEOUT, "C stored at the venue", first)
        else:
            await say(f"/order {BINARY} Yes BUY 0.99 10", "<b>filled</b>")  # marketable on paper
            await say(f"/order {BINARY} Yes BUY 0.02 10", "<b>live</b>")  # rests on paper
        obs.posts_before = len(clob.requests_to("POST", "/order"))
        obs.killed_rc = await first.kill9()
        obs.before = await _db(db_url, yes)
        first_life_audit = int((await query(db_url, "SELECT count(*) FROM exec_audit"))[0][0])

        # ---- while it is dead, the venue moves on ------------------------------------------------
        if mode == "live":
            resting = next(o for o in clob.orders.values() if o.price == Decimal("0.20"))
            await clob.trade_against(resting.id, Decimal(4))
            await asyncio.sleep(0.5)  # the trade settles (CONFIRMED) with nobody listening

        # ---- second life ---------------------------------------------------------------------
        user_proxy.block(0)
        mark_req = len(clob.requests)
        mark_tg = len(telegram.calls)
        second = ServiceProcess(config, env, log)
        await second.start()
        await telegram.wait_sent("Polybot started", STEP_TIMEOUT, after=mark_tg)
        status = await say("/status", "<b>Polybot</b>")
        orders_reply = await say("/orders", "rders")
        positions_reply = await say("/positions", "osition")
        obs.replies_after_restart = [status.text, orders_reply.text, positions_reply.text]
        await asyncio.sleep(0.5)
        obs.after = await _db(db_url, yes)
        obs.requests_after_restart = [(r.method, r.path) for r in clob.requests[mark_req:]]
        audit = await query(db_url, "SELECT action, outcome FROM exec_audit ORDER BY id")
        obs.audit_after_restart = [f"{a}:{o}" for a, o in audit][first_life_audit:]
        obs.posts_after = len(clob.requests_to("POST", "/order"))
        ours = {k.api_key for k in clob.api_keys.values()}
        trades = [t for t in clob.trades.values() if t.asset_id == yes and ours & set(t.owners())]
        obs.venue = {
            "orders": {o.id: (o.status, o.size_matched, o.price) for o in clob.orders.values()},
            "position": sum((t.size for t in trades if t.status == "CONFIRMED"), Decimal(0)),
            "trades": len(trades),
        }
        obs.stopped_rc = await second.terminate()
        obs.stderr = log.read_text()[-4000:]
        return obs
    finally:
        await stack.aclose()


async def _db_position(db_url: str, token: str, want: Decimal) -> bool:
    rows = await query(db_url, "SELECT size FROM positions WHERE token_id = :t", t=token)
    return bool(rows) and from_units(int(rows[0][0])) == want


@pytest.fixture(scope="module")
def live_crash(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    return asyncio.run(asyncio.wait_for(_scenario("live", tmp_path_factory.mktemp("crash-live")), 120))


@pytest.fixture(scope="module")
def paper_crash(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    return asyncio.run(asyncio.wait_for(_scenario("paper", tmp_path_factory.mktemp("crash-paper")), 120))


def _orders_by_price(obs: Observed, when: str) -> dict[Decimal, tuple[str, Decimal]]:
    return {price: (status, filled) for status, filled, price in getattr(obs, when)["orders"].values()}


# ---- live -----------------------------------------------------------------------------------


def test_live_kill9_restarts_disarmed(live_crash: Observed) -> None:
    assert live_crash.killed_rc == -signal.SIGKILL
    assert live_crash.before["armed_state"] is not None
    assert "disarmed" in live_crash.replies_after_restart[0], live_crash.replies_after_restart[0]
    assert "DISARMED" in live_crash.stderr
    assert live_crash.stopped_rc == 0, live_crash.stderr


def test_live_restart_reads_the_venue_before_anything_else(live_crash: Observed) -> None:
    reqs = live_crash.requests_after_restart
    trading = [i for i, (m, p) in enumerate(reqs) if (m, p) in (("POST", "/order"), ("DELETE", "/order"))]
    reads = [i for i, (m, p) in enumerate(reqs) if (m, p) == ("GET", "/data/orders")]
    assert reads, reqs
    assert not trading, f"the restarted service traded before (or without) being armed: {reqs}"
    # the second life's execution audit: forced disarm, then lookups and the reconcile; nothing else
    actions = [a.split(":")[0] for a in live_crash.audit_after_restart]
    assert actions[0] == "reset" and live_crash.audit_after_restart[0] == "reset:disarmed", actions
    assert actions[-1] == "reconcile" and set(actions[1:-1]) <= {"lookup"}, actions


def test_live_orders_are_settled_from_the_venue_and_never_reposted(live_crash: Observed) -> None:
    before = _orders_by_price(live_crash, "before")
    after = _orders_by_price(live_crash, "after")
    assert len(before) == 3
    # C was killed in flight: the row existed, its outcome was never recorded
    assert before[Decimal("0.21")][0] == "new"
    assert after[Decimal("0.21")][0] == "live", "the in-flight order must be found at the venue"
    assert after[Decimal("0.30")][0] == "filled"
    assert after[Decimal("0.20")][0] in ("live", "partially_filled")
    assert live_crash.posts_after == live_crash.posts_before == 3, "no order may be posted twice"
    venue_status = {p: s for s, _, p in live_crash.venue["orders"].values()}
    assert venue_status == {Decimal("0.20"): "LIVE", Decimal("0.30"): "MATCHED", Decimal("0.21"): "LIVE"}


def test_live_position_before_the_crash_survives(live_crash: Observed) -> None:
    assert live_crash.before["position"] == Decimal(10)
    assert live_crash.after["position"] >= Decimal(10)
    confirmed = [f for f in live_crash.after["fills"] if f[1] == "confirmed"]
    assert sum(f[2] for f in confirmed) == live_crash.after["position"]


def test_live_position_matches_the_venue_after_restart(live_crash: Observed) -> None:
    assert live_crash.venue["position"] == Decimal(14)
    assert live_crash.after["position"] == live_crash.venue["position"]
    assert _orders_by_price(live_crash, "after")[Decimal("0.20")] == ("partially_filled", Decimal(4))


# ---- paper ----------------------------------------------------------------------------------


def test_paper_kill9_restarts_disarmed_with_its_positions(paper_crash: Observed) -> None:
    assert paper_crash.killed_rc == -signal.SIGKILL
    assert "disarmed" in paper_crash.replies_after_restart[0]
    assert paper_crash.stopped_rc == 0, paper_crash.stderr
    before, after = paper_crash.before, paper_crash.after
    assert before["position"] == Decimal(10)
    # positions and realised PnL are rebuilt from the confirmed fills, exactly
    assert after["position"] == before["position"]
    assert after["realised"] == before["realised"]
    assert [f for f in after["fills"] if f[1] == "confirmed"] == [f for f in before["fills"] if f[1] == "confirmed"]


def test_paper_resting_order_is_closed_at_restart(paper_crash: Observed) -> None:
    """The paper venue lives in the process: a resting paper order died with it, and the
    restart's reconcile says so instead of showing it open."""
    before = _orders_by_price(paper_crash, "before")
    after = _orders_by_price(paper_crash, "after")
    assert before[Decimal("0.02")][0] == "live"
    assert after[Decimal("0.02")][0] == "canceled"
    assert after[Decimal("0.99")][0] == "filled"
    assert "No open orders" in paper_crash.replies_after_restart[1]
