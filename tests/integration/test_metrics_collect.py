"""Metrics bound to real components: writer (SQLite and PostgreSQL), engine with the paper relayer,
risk gate, event bus, feed objects; scraped over real HTTP and checked with promtool."""

from __future__ import annotations

import asyncio
import shutil
import time
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.events import EventBus
from core.execution.engine import Engine
from core.execution.relayers.paper import PaperRelayer, StaticBook
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.store import MemoryExecutionStore
from core.execution.types import Outcome
from core.feed.ws import MarketFeed
from core.metrics.bus_stats import BusStats
from core.metrics.catalog import CATALOG
from core.metrics.collect import Metrics
from core.metrics.replay import IngestRig
from core.store.db import create_engine
from core.store.migrate import upgrade_engine
from core.store.writer import BatchedWriter
from core.strategies.runner import DutchStats
from core.types import Intent, MarketInfo, OrderType, Side, TokenInfo
from tests.conftest import PROJECT_FIXTURES
from tests.procs import arun

RECORDING = PROJECT_FIXTURES / "recordings" / "demo_market.jsonl"
YES, NO = "1010", "2020"
BIN = MarketInfo("0xbin", "Will it?", "will-it", (TokenInfo(YES, "Yes"), TokenInfo(NO, "No")), fee_rate=D("0"))
TIMEOUT = 10.0

Key = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[Key, float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def v(vals: dict[Key, float], name: str, **labels: str) -> float:
    return vals.get((name, frozenset(labels.items())), 0.0)


async def no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


class World:
    """An engine built as the service builds it: on the metrics' audit store."""

    def __init__(self, metrics: Metrics) -> None:
        self.bus = EventBus()
        self.books = {YES: StaticBook(YES, ask_levels=[(D("0.50"), D("100"))], bid_levels=[(D("0.48"), D("100"))])}
        self.store = metrics.audit_store(MemoryExecutionStore())
        self.relayer = PaperRelayer(self.books.get, clock=time.time)
        self.risk = RiskGate(RiskLimits.configured(), self.store, time.time, self.bus)
        self.engine = Engine(
            self.relayer,
            self.risk,
            self.store,
            self.bus,
            sleep=no_sleep,
            book_provider=self.books.get,
            relayer_retry_sleep_ms=1,
            engine_retry_sleep_ms=1,
        )

    async def submit(self, seq: int, price: str = "0.50", size: str = "10") -> Any:
        intent = Intent(BIN.condition_id, YES, Side.BUY, D(price), D(size), OrderType.GTC)
        return await self.engine.submit(intent, BIN, seq=seq)


async def scrape(client: httpx.AsyncClient, url: str) -> dict[Key, float]:
    resp = await client.get(url)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return parse(resp.text)


async def test_orders_refusals_fills_and_relayer_calls_move_the_scraped_counters() -> None:
    m = Metrics(process_metrics=False)
    world = World(m)
    await world.engine.start()
    m.bind(engine=world.engine, bus=world.bus)  # the risk gate comes with the engine
    server = m.serve("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as client:
            before = await scrape(client, server.url)
            assert v(before, "polybot_armed") == 0
            assert v(before, "polybot_trading_mode", mode="paper") == 1

            refused = await world.submit(1)  # disarmed: the gate says no
            assert not refused.ok
            after_refusal = await scrape(client, server.url)
            assert v(after_refusal, "polybot_risk_refusals_total", reason="not_armed") == 1
            assert v(after_refusal, "polybot_orders_total", status="refused") == 1
            assert v(after_refusal, "polybot_relayer_requests_total", action="place", outcome="accepted") == 0

            assert (await world.risk.arm("tester")).ok
            placed = await world.submit(2)  # marketable: filled at once by the paper relayer
            assert placed.ok
            world.relayer.inject.next(Outcome.RETRYABLE, retry_after_s=0.01, error="Too Many Requests")
            retried = await world.submit(3, price="0.49")  # 429 once, then accepted and resting
            assert retried.ok
            await world.bus.drain()
            after = await scrape(client, server.url)

        assert v(after, "polybot_armed") == 1
        assert v(after, "polybot_risk_state_changes_total", state="armed") == 1
        assert v(after, "polybot_orders_total", status="filled") == 1
        assert v(after, "polybot_orders_total", status="live") >= 1
        assert v(after, "polybot_fills_total", side="buy") == 1
        assert v(after, "polybot_fill_notional_pusd_total", side="buy") == pytest.approx(5.0)
        assert v(after, "polybot_relayer_requests_total", action="place", outcome="accepted") == 2
        assert v(after, "polybot_relayer_requests_total", action="place", outcome="retryable") == 1
        assert v(after, "polybot_relayer_errors_total", action="place", error_class="429") == 1
        assert v(after, "polybot_relayer_request_duration_seconds_count", action="place") == 3
        assert v(after, "polybot_positions_open") == 1
        assert v(after, "polybot_open_orders") == 1
        assert v(after, "polybot_exposure_pusd") == pytest.approx(5.0 + 0.49 * 10)
        assert v(after, "polybot_risk_limit_pusd", limit="max_total_exposure") == 1000
    finally:
        await server.aclose()
        m.unbind()


async def test_a_fully_bound_process_exports_every_catalog_metric_and_passes_promtool() -> None:
    m = Metrics(top_assets=2)
    rig = await IngestRig.open(m)
    world = World(m)
    await world.engine.start()
    try:
        await rig.replay(RECORDING)
        rig.pipeline.on_frame("this is not json {", time.time_ns())
        await rig.flush()
        feed = MarketFeed("ws://127.0.0.1:9/ws/market", ["1", "2"], rig.pipeline.on_frame)  # not started
        counters = SimpleNamespace(opportunities=2, groups_submitted=1, missed={"not_armed": 1})
        m.bind(feed=feed, engine=world.engine, bus=world.bus, opportunities={"dutch": counters})
        m.bind(market_bus=_bus_stats())
        m.set_instance("service", "service@test:9108")
        m.register_runner(SimpleNamespace(stats=DutchStats(evaluations=5, opportunities=2)))
        m.register_runner(SimpleNamespace(stats=_quoter_stats()))
        m.record_command("telegram", "/status", "ok")
        text = m.exposition()
    finally:
        await rig.close()
    vals = parse(text.decode())
    have = {name for name, _ in vals}
    missing = []
    for spec in CATALOG:
        names = [spec.name + s for s in ("_bucket", "_sum", "_count")] if spec.kind == "histogram" else [spec.name]
        if not all(n in have for n in names):
            missing.append(spec.name)
    # the one exception: a connection that never received a frame has no "seconds since" (see test_metrics_serve)
    assert missing == ["polybot_ws_last_frame_age_seconds"], f"catalog metrics with no sample: {missing}"
    assert v(vals, "polybot_ws_frames_total") == 404
    assert v(vals, "polybot_feed_input_errors_total", reason="malformed_json") == 1
    assert v(vals, "polybot_writer_rows_written_total") > 0
    assert v(vals, "polybot_ws_connection_state", connection="0", state="closed") == 1
    assert len([k for k in vals if k[0] == "polybot_book_age_seconds"]) == 2  # the configured top-N
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    proc = await arun([promtool, "check", "metrics"], input=text, timeout_s=30)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (
        proc.stdout.decode() + proc.stderr.decode()
    )


def _bus_stats() -> BusStats:
    """Every market-data bus figure once (a feed worker's, a trader's and a recorder's at once)."""
    s = BusStats()
    s.on_published("delta", 120, 0.0004)
    s.set_shard("0/2", True)
    s.on_received("delta", 0.0009)
    s.on_gap()
    s.set_stream("POLYBOT_MD", 4096, 12)
    s.set_consumer("recorder", 3, 1)
    s.on_recorded("stored")
    return s


def _quoter_stats() -> object:
    from core.strategies.runner import QuoterStats

    return QuoterStats(decisions=3, quotes=2, keeps=1)


async def test_writer_batches_and_receive_to_commit_latency_on_both_backends(db_url: str) -> None:
    db = create_engine(db_url)
    await upgrade_engine(db)
    m = Metrics(process_metrics=False)
    try:
        async with BatchedWriter(db, max_batch=50) as writer:
            m.bind(writer=writer)
            now = time.time_ns()
            for i in range(120):
                row = {
                    "asset_id": "1",
                    "market": "0xm",
                    "side": "BUY",
                    "price": D("0.5"),
                    "size": D(i + 1),
                    "best_bid": None,
                    "best_ask": None,
                    "hash": None,
                    "exchange_ts": 1,
                    "receive_ts": now,
                }
                assert writer.put("book_deltas", row)
            await writer.flush(TIMEOUT)
            st = writer.stats
            vals = parse(m.exposition().decode())
        assert v(vals, "polybot_writer_rows_written_total") == 120
        assert v(vals, "polybot_writer_batch_rows_count") == st.batches >= 3  # max_batch 50
        assert v(vals, "polybot_writer_batch_rows_sum") == 120
        assert v(vals, "polybot_writer_receive_to_commit_seconds_count") == 120
        assert 0 < v(vals, "polybot_writer_receive_to_commit_seconds_sum") < 120 * TIMEOUT
        assert v(vals, "polybot_writer_queue_depth") == 0
    finally:
        m.unbind()
        await db.dispose()


async def test_only_an_engine_built_on_the_audit_store_reports_relayer_calls() -> None:
    m = Metrics(process_metrics=False)
    audited, plain = World(m), World(m)
    plain.engine = Engine(plain.relayer, plain.risk, MemoryExecutionStore(), plain.bus, sleep=no_sleep)
    for world in (audited, plain):
        await world.engine.start()
        assert (await world.risk.arm("tester")).ok
    store = audited.engine.store
    m.bind(engine=audited.engine)
    assert audited.engine.store is store  # binding leaves the engine as it was built
    assert (await audited.submit(1, price="0.49")).ok
    vals = parse(m.exposition().decode())
    assert v(vals, "polybot_relayer_requests_total", action="place", outcome="accepted") == 1
    m.unbind()
    m.bind(engine=plain.engine)
    assert (await plain.submit(2, price="0.49")).ok
    vals = parse(m.exposition().decode())
    assert v(vals, "polybot_relayer_requests_total", action="place", outcome="accepted") == 1  # not counted
    assert v(vals, "polybot_open_orders") == 1  # but the engine itself is read
