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
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.money import from_units
from core.store.repo import armed_from_value
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
from tests.procs import console_script, group_members, kill9, spawn, stop_group

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "7412589630:AAH3kL9mQ2xR7vT1yU5wE8oP4iS6dF0gJ2c"  # shaped like a real one; the double checks it
STEP_TIMEOUT = 45.0  # a ceiling for one step: every wait returns as soon as its condition holds
SCENARIO_TIMEOUT = 300.0


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
    places_before: int = 0  # 'place' rows of the execution audit: one per placement attempt
    places_after: int = 0
    reset_alerts_stored: list[str] = field(default_factory=list)  # the reset_on_start alert rows
    reset_alerts_after_restart: list[str] = field(default_factory=list)  # and what Telegram got of them
    killed_rc: int | None = None
    stopped_rc: int | None = None
    survivors: list[int] = field(default_factory=list)  # processes of either life's group left over
    stderr: str = ""


class ServiceProcess:
    """``polybot run-service`` from the venv's console script, leading its own process group."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = spawn(
                [console_script("polybot"), "run-service", "--config", str(self.config), "--migrate"],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=fh,
            )

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    async def kill9(self) -> int:
        assert self.proc is not None
        return await asyncio.to_thread(kill9, self.proc)

    async def terminate(self) -> int | None:
        """SIGTERM to the group, then SIGKILL to what is left (also on a failed run)."""
        if self.proc is None:
            return None
        return await asyncio.to_thread(stop_group, self.proc)


async def _wait(pred: Any, within_s: float, what: str, proc: ServiceProcess | None = None) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if proc is not None and proc.returncode is not None:
            raise AssertionError(f"the service exited ({proc.returncode}) while waiting for {what}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within_s}s waiting for {what}")


async def _db(db_url: str, token: str) -> dict[str, Any]:
    orders = await query(db_url, "SELECT client_order_id, status, filled_size, price FROM orders ORDER BY id")
    fills = await query(db_url, "SELECT client_order_id, status, size, price FROM fills ORDER BY id")
    pos = await query(db_url, "SELECT size, realised_pnl FROM positions WHERE token_id = :t", t=token)
    state = await query(db_url, "SELECT value FROM state WHERE key = 'armed'")
    armed = state[0][0] if state else None
    return {
        # one entry per row: two orders at one price stay two entries
        "orders": [(str(r[0]), str(r[1]), from_units(int(r[2])), from_units(int(r[3]))) for r in orders],
        "fills": [(str(r[0]), str(r[1]), from_units(int(r[2])), from_units(int(r[3]))) for r in fills],
        "position": from_units(int(pos[0][0])) if pos else Decimal(0),
        "realised": from_units(int(pos[0][1])) if pos else Decimal(0),
        # None: no state row; else what the service reads it as (a JSON document in the column)
        "armed": None if armed is None else armed_from_value(json.loads(armed) if isinstance(armed, str) else armed),
    }


async def _places(db_url: str) -> int:
    return int((await query(db_url, "SELECT count(*) FROM exec_audit WHERE action = 'place'"))[0][0])


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
            "data_api__url": clob.url,  # the CLOB double answers /positions (venue sync) too
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
            await confirm(card, "order: open")  # A: rests at the venue
            clob.set_book(yes, [], [(Decimal("0.30"), Decimal(100))])
            card = await say(f"/order {BINARY} Yes BUY 0.30 10", "LIVE order")
            await confirm(card, "order: filled")  # B: takes the ask
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
            await say(f"/order {BINARY} Yes BUY 0.99 10", "order: filled")  # marketable on paper
            await say(f"/order {BINARY} Yes BUY 0.02 10", "order: open")  # rests on paper
        obs.posts_before = len(clob.requests_to("POST", "/order"))
        obs.killed_rc = await first.kill9()
        obs.before = await _db(db_url, yes)
        obs.places_before = await _places(db_url)
        first_life_audit = int((await query(db_url, "SELECT count(*) FROM exec_audit"))[0][0])

        # ---- while it is dead, the venue moves on ------------------------------------------------
        if mode == "live":
            resting = next(o for o in clob.orders.values() if o.price == Decimal("0.20"))
            trade = await clob.trade_against(resting.id, Decimal(4))
            # the trade settles with nobody listening
            await _wait(lambda: trade.status == "CONFIRMED", STEP_TIMEOUT, "the venue to confirm the trade")

        # ---- second life ---------------------------------------------------------------------
        user_proxy.block(0)
        mark_req = len(clob.requests)
        mark_tg = len(telegram.calls)
        second = ServiceProcess(config, env, log)
        await second.start()
        stack.push_async_callback(second.terminate)
        await telegram.wait_sent("Polybot started", STEP_TIMEOUT, after=mark_tg)
        status = await say("/status", "<b>Polybot</b>")
        orders_reply = await say("/orders", "rders")
        positions_reply = await say("/positions", "osition")
        obs.replies_after_restart = [status.text, orders_reply.text, positions_reply.text]

        async def second_life_audit() -> list[str]:
            rows = await query(db_url, "SELECT action, outcome FROM exec_audit ORDER BY id")
            return [f"{a}:{o}" for a, o in rows][first_life_audit:]

        # the start-up reconcile is the last thing the restart records before it serves the chat
        await _wait(
            lambda: _has_reconcile(second_life_audit()), STEP_TIMEOUT, "the restart's reconcile in the audit", second
        )
        if mode == "live":
            # and what the venue did while we were away reaches the position; if it never does,
            # the position tests below say so (the other observations stay valid)
            with contextlib.suppress(AssertionError):
                await _wait(lambda: _db_position(db_url, yes, Decimal(14)), STEP_TIMEOUT, "a position of 14", second)
        obs.after = await _db(db_url, yes)
        obs.audit_after_restart = await second_life_audit()
        obs.stopped_rc = await second.terminate()
        # counted once the second life is over: whatever it did, in its whole life, is in these
        obs.places_after = await _places(db_url) - obs.places_before
        obs.requests_after_restart = [(r.method, r.path) for r in clob.requests[mark_req:]]
        obs.posts_after = len(clob.requests_to("POST", "/order"))
        obs.reset_alerts_stored = [
            str(r[0]) for r in await query(db_url, "SELECT message FROM alerts WHERE kind = 'reset_on_start'")
        ]
        obs.reset_alerts_after_restart = [
            c.text for c in telegram.calls[mark_tg:] if c.method == "sendMessage" and "Started disarmed" in c.text
        ]
        obs.survivors = [pid for life in (first, second) if life.proc for pid in group_members(life.proc.pid)]
        ours = {k.api_key for k in clob.api_keys.values()}
        trades = [t for t in clob.trades.values() if t.asset_id == yes and ours & set(t.owners())]
        obs.venue = {
            "orders": [(o.status, o.size_matched, o.price) for o in clob.orders.values()],
            "position": sum((t.size for t in trades if t.status == "CONFIRMED"), Decimal(0)),
            "trades": len(trades),
        }
        obs.stderr = log.read_text()[-4000:]
        return obs
    finally:
        await stack.aclose()


async def _has_reconcile(audit: Any) -> bool:
    return any(a.startswith("reconcile:") for a in await audit)


async def _db_position(db_url: str, token: str, want: Decimal) -> bool:
    rows = await query(db_url, "SELECT size FROM positions WHERE token_id = :t", t=token)
    return bool(rows) and from_units(int(rows[0][0])) == want


@pytest.fixture(scope="module")
def live_crash(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    return asyncio.run(asyncio.wait_for(_scenario("live", tmp_path_factory.mktemp("crash-live")), SCENARIO_TIMEOUT))


@pytest.fixture(scope="module")
def paper_crash(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    return asyncio.run(asyncio.wait_for(_scenario("paper", tmp_path_factory.mktemp("crash-paper")), SCENARIO_TIMEOUT))


def _orders_at(obs: Observed, when: str, price: str) -> list[tuple[str, Decimal]]:
    """(status, filled) of every order row at ``price``: a duplicate shows as a second entry."""
    return [(status, filled) for _, status, filled, p in getattr(obs, when)["orders"] if p == Decimal(price)]


def _prices(obs: Observed, when: str) -> Counter[Decimal]:
    return Counter(p for *_, p in getattr(obs, when)["orders"])


def _assert_restarted_disarmed(obs: Observed) -> None:
    assert obs.killed_rc == -signal.SIGKILL
    assert obs.before["armed"] is True, "the first life was armed when it died (the state row says so)"
    assert obs.after["armed"] is False, "the restart must persist the disarmed state"
    status = obs.replies_after_restart[0]
    assert "⚪ disarmed" in status and "ARMED" not in status, status
    assert len(obs.reset_alerts_stored) == 1 and "was armed" in obs.reset_alerts_stored[0], obs.reset_alerts_stored
    # published while the service starts, before the chat front end exists: it still reaches the trader
    assert len(obs.reset_alerts_after_restart) == 1, obs.reset_alerts_after_restart
    assert "always start disarmed" in obs.reset_alerts_after_restart[0]
    assert obs.audit_after_restart[0] == "reset:disarmed", obs.audit_after_restart
    assert obs.stopped_rc == 0, obs.stderr
    assert not obs.survivors, f"processes of the service's group survived: {obs.survivors}"


# ---- live -----------------------------------------------------------------------------------


@pytest.mark.slow(seconds=12)  # with its fixture: a service killed and started again
def test_live_kill9_restarts_disarmed(live_crash: Observed) -> None:
    _assert_restarted_disarmed(live_crash)


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
    # one row per order, before and after: the restart neither lost nor duplicated one
    want = Counter({Decimal("0.20"): 1, Decimal("0.30"): 1, Decimal("0.21"): 1})
    assert _prices(live_crash, "before") == want, live_crash.before["orders"]
    assert _prices(live_crash, "after") == want, live_crash.after["orders"]
    assert [o[0] for o in live_crash.after["orders"]] == [o[0] for o in live_crash.before["orders"]]
    # C was killed in flight: the row existed, its outcome was never recorded
    assert [s for s, _ in _orders_at(live_crash, "before", "0.21")] == ["new"]
    assert [s for s, _ in _orders_at(live_crash, "after", "0.21")] == ["live"], "the in-flight order must be found"
    assert [s for s, _ in _orders_at(live_crash, "after", "0.30")] == ["filled"]
    assert [s for s, _ in _orders_at(live_crash, "after", "0.20")] == ["partially_filled"]
    assert live_crash.posts_after == live_crash.posts_before == 3, "no order may be posted twice"
    assert live_crash.places_after == 0, "the second life placed an order"
    venue = sorted((p, s) for s, _, p in live_crash.venue["orders"])
    assert venue == [(Decimal("0.20"), "LIVE"), (Decimal("0.21"), "LIVE"), (Decimal("0.30"), "MATCHED")]


def test_live_position_before_the_crash_survives(live_crash: Observed) -> None:
    assert live_crash.before["position"] == Decimal(10)
    assert live_crash.after["position"] >= Decimal(10)
    confirmed = [f for f in live_crash.after["fills"] if f[1] == "confirmed"]
    assert sum(f[2] for f in confirmed) == live_crash.after["position"]


def test_live_position_matches_the_venue_after_restart(live_crash: Observed) -> None:
    assert live_crash.venue["position"] == Decimal(14)
    assert live_crash.after["position"] == live_crash.venue["position"]
    assert _orders_at(live_crash, "after", "0.20") == [("partially_filled", Decimal(4))]


# ---- paper ----------------------------------------------------------------------------------


@pytest.mark.slow(seconds=12)
def test_paper_kill9_restarts_disarmed_with_its_positions(paper_crash: Observed) -> None:
    _assert_restarted_disarmed(paper_crash)
    before, after = paper_crash.before, paper_crash.after
    assert before["position"] == Decimal(10)
    # positions and realised PnL are rebuilt from the confirmed fills, exactly
    assert after["position"] == before["position"]
    assert after["realised"] == before["realised"]
    assert [f for f in after["fills"] if f[1] == "confirmed"] == [f for f in before["fills"] if f[1] == "confirmed"]


def test_paper_orders_are_neither_lost_nor_placed_twice(paper_crash: Observed) -> None:
    """Two orders were placed, one each: two rows before the kill, the same two after the
    restart, two placements in the audit, none by the second life."""
    want = Counter({Decimal("0.99"): 1, Decimal("0.02"): 1})
    assert _prices(paper_crash, "before") == want, paper_crash.before["orders"]
    assert _prices(paper_crash, "after") == want, paper_crash.after["orders"]
    assert [o[0] for o in paper_crash.after["orders"]] == [o[0] for o in paper_crash.before["orders"]]
    assert paper_crash.places_before == 2, "one placement per /order"
    assert paper_crash.places_after == 0, "the second life placed an order"
    assert paper_crash.posts_before == paper_crash.posts_after == 0, "paper mode sent an order to the venue"
    assert len([f for f in paper_crash.after["fills"] if f[1] == "confirmed"]) == 1


def test_paper_resting_order_is_closed_at_restart(paper_crash: Observed) -> None:
    """The paper venue lives in the process: a resting paper order died with it, and the
    restart's reconcile says so instead of showing it open."""
    assert [s for s, _ in _orders_at(paper_crash, "before", "0.02")] == ["live"]
    assert [s for s, _ in _orders_at(paper_crash, "after", "0.02")] == ["canceled"]
    assert [s for s, _ in _orders_at(paper_crash, "after", "0.99")] == ["filled"]
    assert "No open orders" in paper_crash.replies_after_restart[1]
