"""Values captured by the taps (pipeline sink, event bus, audit store) and read at scrape time."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.events import Alert, AlertCleared, AlertKind, EventBus, FillEvent, OrderEvent, Severity, StateChanged
from core.execution.store import AuditRecord, MemoryExecutionStore
from core.execution.types import Fill, OrderStatus
from core.feed.pipeline import IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.replay import iter_frames
from core.metrics.collect import Metrics
from core.metrics.summary import as_json, render
from core.metrics.taps import AuditTap
from core.strategies.runner import DutchStats, QuoterStats
from core.types import Side
from tests.conftest import PROJECT_FIXTURES

RECORDING = PROJECT_FIXTURES / "recordings" / "demo_market.jsonl"

Key = tuple[str, frozenset[tuple[str, str]]]


def values(m: Metrics) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def v(vals: dict[Key, float], name: str, **labels: str) -> float:
    return vals[(name, frozenset(labels.items()))]


def wire_event_counts(path: Path) -> Counter[str]:
    """An independent count of the recording's events by event_type (plain json, not our decoder)."""
    counts: Counter[str] = Counter()
    for _, frame in iter_frames(path):
        if frame.strip() == "PONG":
            counts["pong"] += 1
            continue
        data = json.loads(frame)
        for event in data if isinstance(data, list) else [data]:
            counts[event["event_type"]] += 1
    return counts


def feed_rig(m: Metrics) -> tuple[FeedProcessor, IngestPipeline]:
    processor = FeedProcessor()
    pipeline = IngestPipeline(processor)
    m.bind(pipeline=pipeline)
    return processor, pipeline


def test_frames_events_errors_and_apply_latency_from_a_real_pipeline() -> None:
    m = Metrics(process_metrics=False)
    _processor, pipeline = feed_rig(m)
    frames = [f for _, f in iter_frames(RECORDING)]
    for frame in frames:
        pipeline.on_frame(frame, time.time_ns())
    vals = values(m)
    assert v(vals, "polybot_ws_frames_total") == len(frames)
    expected = wire_event_counts(RECORDING)
    for event_type, n in expected.items():
        assert v(vals, "polybot_ws_events_total", event_type=event_type) == n, event_type
    assert v(vals, "polybot_books", status="ok") == 8
    assert v(vals, "polybot_book_status_changes_total", status="ok") == 8
    assert v(vals, "polybot_feed_receive_to_apply_seconds_count") == len(frames)
    assert 0 < v(vals, "polybot_feed_receive_to_apply_seconds_sum") < len(frames) * 1.0
    assert v(vals, "polybot_feed_input_errors_total", reason="malformed_json") == 0
    assert 0 <= v(vals, "polybot_book_staleness_max_seconds") < 60

    # bad input moves the error counters (and the frame counter), never the event counters
    pipeline.on_frame("this is not json {", time.time_ns())
    pipeline.on_frame('{"event_type": "bogus", "asset_id": "1"}', time.time_ns())
    after = values(m)
    assert v(after, "polybot_ws_frames_total") == len(frames) + 2
    assert v(after, "polybot_feed_input_errors_total", reason="malformed_json") == 1
    assert v(after, "polybot_feed_input_errors_total", reason="unknown_event") == 1
    assert sum(val for (name, _), val in after.items() if name == "polybot_ws_events_total") == sum(expected.values())


def test_recorded_receive_times_are_not_taken_for_latency() -> None:
    m = Metrics(process_metrics=False)
    _processor, pipeline = feed_rig(m)
    recv_ns, frame = next(iter(iter_frames(RECORDING)))
    pipeline.on_frame(frame, recv_ns)  # a receive time from the recording, months away from now
    vals = values(m)
    assert v(vals, "polybot_feed_receive_to_apply_seconds_count") == 0
    assert v(vals, "polybot_latency_samples_skipped_total", stage="apply") == 1


def test_bus_events_count_orders_fills_alerts_and_arm_changes() -> None:
    m = Metrics(process_metrics=False)
    bus = EventBus()
    m.bind(bus=bus)
    fill = Fill("c1", "v1", "111", Side.BUY, D("0.40"), D("10"), fee=D("0.1"), trade_id="t1")
    for event in (
        OrderEvent("c1", OrderStatus.LIVE),
        OrderEvent("c1", OrderStatus.FILLED, filled=D("10")),
        OrderEvent("c2", "refused", reason_code="not_armed"),
        FillEvent(fill),
        Alert(AlertKind.ONE_LEGGED, Severity.CRITICAL, "g1", "one leg filled"),
        Alert("service", Severity.INFO, "lifecycle", "started"),
        AlertCleared(AlertKind.ONE_LEGGED, "g1"),
        Alert(AlertKind.UNKNOWN_OUTCOME, Severity.WARNING, "c9", "unknown"),
        StateChanged(armed=True, by="tester"),
    ):
        bus.publish(event)
    vals = values(m)
    assert v(vals, "polybot_orders_total", status="live") == 1
    assert v(vals, "polybot_orders_total", status="filled") == 1
    assert v(vals, "polybot_orders_total", status="refused") == 1
    assert v(vals, "polybot_orders_total", status="canceled") == 0  # pre-declared, so rate() sees the first one
    assert v(vals, "polybot_fills_total", side="buy") == 1
    assert v(vals, "polybot_fills_total", side="sell") == 0
    assert v(vals, "polybot_fill_notional_pusd_total", side="buy") == pytest.approx(4.0)
    assert v(vals, "polybot_fill_fees_pusd_total") == pytest.approx(0.1)
    assert v(vals, "polybot_alerts_total", kind="one_legged", severity="critical") == 1
    assert v(vals, "polybot_alerts_total", kind="service", severity="info") == 1
    assert v(vals, "polybot_alerts_active", kind="one_legged") == 0
    assert v(vals, "polybot_alerts_active", kind="unknown_outcome") == 1
    assert v(vals, "polybot_risk_state_changes_total", state="armed") == 1
    assert v(vals, "polybot_events_published_total") == 9
    m.unbind()
    bus.publish(OrderEvent("c3", OrderStatus.LIVE))
    assert v(values(m), "polybot_orders_total", status="live") == 1  # unsubscribed


async def test_audit_tap_forwards_everything_and_observes_audit_records() -> None:
    inner = MemoryExecutionStore()
    seen: list[AuditRecord] = []
    tap = AuditTap(inner, seen.append)
    rec = AuditRecord("place", "accepted", "c1", latency_ms=12.5, error_class="none")
    await tap.add_audit(rec)
    await tap.record_attempt(AuditRecord("place", "retryable", "c1", error_class="429", latency_ms=3.0), "c1")
    assert seen[0] is rec and len(seen) == 2
    assert inner.audit[0] is rec
    assert tap.orders is inner.orders  # everything else is delegated

    def broken(_rec: object) -> None:
        raise RuntimeError("metrics bug")

    before = len(inner.audit)
    await AuditTap(inner, broken).add_audit(AuditRecord("cancel", "accepted"))  # never breaks the engine
    assert len(inner.audit) == before + 1


def test_runner_stats_and_opportunity_counters_are_read_when_scraped() -> None:
    m = Metrics(process_metrics=False)
    dutch = SimpleNamespace(stats=DutchStats(evaluations=10, opportunities=3))
    quoter = SimpleNamespace(stats=QuoterStats(decisions=7, quotes=4, keeps=2, pulls=1))
    runners = [dutch]
    counters = SimpleNamespace(opportunities=3, groups_submitted=1, missed={"not_armed": 2})
    m.bind(runners=lambda: runners, opportunities={"dutch": counters})
    vals = values(m)
    assert v(vals, "polybot_strategy_evaluations_total", strategy="dutch") == 10
    assert v(vals, "polybot_strategy_opportunities_total", strategy="dutch") == 3
    assert v(vals, "polybot_strategy_opportunities_taken_total", strategy="dutch") == 1
    assert v(vals, "polybot_strategy_opportunities_missed_total", strategy="dutch", reason="not_armed") == 2
    runners.append(quoter)  # picked up at the next scrape
    dutch.stats.evaluations += 5
    vals = values(m)
    assert v(vals, "polybot_strategy_evaluations_total", strategy="dutch") == 15
    assert v(vals, "polybot_strategy_evaluations_total", strategy="spread") == 7
    assert v(vals, "polybot_quoter_decisions_total", action="pull") == 1
    assert v(vals, "polybot_strategy_runners", strategy="spread") == 1
    runners.clear()  # a replaced runner keeps its counts: counters never go backwards
    assert v(values(m), "polybot_strategy_evaluations_total", strategy="dutch") == 15


def test_a_broken_component_is_counted_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics(process_metrics=False)
    m.bind(feed=object())  # has no stats(): its part of the scrape fails
    feed_rig(m)[1].on_frame("PONG", time.time_ns())
    vals = values(m)
    assert v(vals, "polybot_metrics_collect_errors_total", component="feed") == 1
    assert v(vals, "polybot_ws_frames_total") == 1  # the rest is still there
    assert "could not read feed" in caplog.text


async def test_scrapes_from_another_thread_are_built_on_the_event_loop() -> None:
    m = Metrics(process_metrics=False, collect_timeout_s=0.3)
    _processor, pipeline = feed_rig(m)  # bound on this loop
    pipeline.on_frame("PONG", time.time_ns())
    loop_thread = threading.get_ident()
    built_on: list[int] = []
    snapshot = m._snapshot

    def spy() -> list[object]:
        built_on.append(threading.get_ident())
        return snapshot()  # type: ignore[return-value]

    m._snapshot = spy  # type: ignore[method-assign]
    text = await asyncio.to_thread(m.exposition)
    assert b"polybot_ws_frames_total 1.0" in text
    assert built_on == [loop_thread]

    # a blocked loop: the scrape gets the previous snapshot after the timeout, and it is counted
    results: list[bytes] = []
    scraper = threading.Thread(target=lambda: results.append(m.exposition()))
    scraper.start()
    time.sleep(0.8)  # noqa: ASYNC251 - blocks the loop on purpose
    scraper.join(5)
    assert results and b"polybot_ws_frames_total 1.0" in results[0]
    await asyncio.sleep(0)  # the late request is dropped, not built
    assert built_on == [loop_thread]
    assert b"polybot_metrics_collect_timeouts_total 1.0" in m.exposition()


def test_summary_and_json_show_the_values() -> None:
    m = Metrics(process_metrics=False)
    _processor, pipeline = feed_rig(m)
    for _, frame in iter_frames(RECORDING):
        pipeline.on_frame(frame, time.time_ns())
    families = m.families()
    text = render(families)
    assert text.startswith("Feed health")
    assert "ws_frames_total" in text and "Book integrity" in text
    assert "samples, mean" in text  # the latency histogram
    data = as_json(families)["metrics"]
    assert data["polybot_ws_frames_total"]["series"] == [{"labels": {}, "value": 403}]
    apply = data["polybot_feed_receive_to_apply_seconds"]["series"][0]
    assert apply["count"] == 403 and apply["buckets"]["+Inf"] == 403
    json.dumps(data, allow_nan=False)
    assert render(Metrics(process_metrics=False).families()).startswith("Bot")


def test_rebinding_moves_the_sink_to_the_new_pipeline() -> None:
    m = Metrics(process_metrics=False)
    _old_processor, old = feed_rig(m)
    new_processor, new = feed_rig(m)
    assert m._feed_tap not in old.sinks and m._feed_tap in new.sinks
    old.on_frame("PONG", time.time_ns())  # no longer watched
    new.on_frame("PONG", time.time_ns())
    vals = values(m)
    assert v(vals, "polybot_ws_events_total", event_type="pong") == 1
    assert v(vals, "polybot_ws_frames_total") == new_processor.frames == 1
    m.unbind()
    assert m._feed_tap not in new.sinks
