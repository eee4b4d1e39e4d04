"""The market-data bus figures and the process identity (issue 20 point 5): what a feed worker, a
trader or a recorder counts reaches the scrape under the catalog's names, and every process says
who it is in ``polybot_instance_info``."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.metrics.bus_stats import BusStats
from core.metrics.catalog import BY_NAME
from core.metrics.collect import Metrics, serve_metrics
from core.metrics.instance import identity_label, instance_identity
from tests.conftest import REPO_ROOT

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(m: Metrics) -> dict[Sample, float]:
    text = m.exposition().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_bus_figures_reach_the_scrape_under_catalog_names() -> None:
    stats = BusStats()
    stats.on_published("delta", 100, lag_s=0.0003)
    stats.on_published("delta", 50, lag_s=0.002)
    stats.on_published("snapshot", 900)
    stats.on_publish_error()
    stats.set_shard("1/4", True)
    stats.on_received("delta", lag_s=0.0007)
    stats.on_gap(2)
    stats.resnapshots += 1
    stats.set_stream("POLYBOT_MD", 123_456, 789)
    stats.set_consumer("polybot-recorder", 40, 7)
    stats.on_recorded("stored", 10)
    stats.on_recorded("duplicate", 3)
    stats.redelivered += 3
    m = Metrics(process_metrics=False)
    m.bind(market_bus=stats)
    got = scrape(m)

    def v(name: str, **labels: str) -> float:
        assert name.removesuffix("_bucket").removesuffix("_count") in BY_NAME or name in BY_NAME, name
        return got[(name, frozenset(labels.items()))]

    assert v("polybot_bus_published_total", kind="delta") == 2
    assert v("polybot_bus_published_total", kind="snapshot") == 1
    assert v("polybot_bus_published_bytes_total") == 1050
    assert v("polybot_bus_publish_errors_total") == 1
    assert v("polybot_bus_worker_lag_seconds_count") == 2  # the snapshot gave no lag
    assert v("polybot_bus_worker_lag_seconds_bucket", le="0.0005") == 1
    assert v("polybot_bus_shard_active", shard="1/4") == 1
    assert v("polybot_bus_received_total", kind="delta") == 1
    assert v("polybot_bus_receive_lag_seconds_bucket", le="0.001") == 1
    assert v("polybot_bus_sequence_gaps_total") == 2
    assert v("polybot_bus_resnapshots_total") == 1
    assert v("polybot_bus_stream_bytes", stream="POLYBOT_MD") == 123_456
    assert v("polybot_bus_stream_messages", stream="POLYBOT_MD") == 789
    assert v("polybot_bus_consumer_pending", consumer="polybot-recorder") == 40
    assert v("polybot_bus_consumer_ack_pending", consumer="polybot-recorder") == 7
    assert v("polybot_recorder_events_total", outcome="stored") == 10
    assert v("polybot_recorder_events_total", outcome="duplicate") == 3
    assert v("polybot_recorder_events_total", outcome="invalid") == 0
    assert v("polybot_recorder_redelivered_total") == 3


def test_an_unbound_process_exports_no_bus_series_and_kinds_stay_bounded() -> None:
    got = scrape(Metrics(process_metrics=False))
    assert not [k for k in got if k[0].startswith(("polybot_bus_", "polybot_recorder_", "polybot_instance"))]
    stats = BusStats()
    for i in range(100):
        stats.on_received(f"kind{i}")
    assert len(stats.received) == 33 and stats.received["other"] == 68  # 32 distinct, then "other"
    with pytest.raises(ValueError, match="unknown recorder outcome"):
        stats.on_recorded("lost")


def test_identity_is_configured_or_role_at_host_and_port() -> None:
    assert instance_identity("", "recorder", 9112, hostname="md-2") == "recorder@md-2:9112"
    assert instance_identity("  ", "feed-worker", 9110, hostname="md-1") == "feed-worker@md-1:9110"
    assert instance_identity("rec-a", "recorder", 9112, hostname="md-2") == "rec-a"
    assert identity_label('bad "name"\n{x}') == "bad_name_x"
    assert identity_label("") == "unknown"
    assert len(identity_label("x" * 500)) == 128


async def test_a_served_process_says_who_it_is_with_the_port_it_got() -> None:
    m = Metrics(process_metrics=False)
    server = await serve_metrics("127.0.0.1", 0, m, role="recorder")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.get(server.url)
        assert resp.status_code == 200
        infos = [
            s.labels
            for fam in text_string_to_metric_families(resp.text)
            for s in fam.samples
            if s.name == "polybot_instance_info" and s.value == 1
        ]
        [labels] = infos
        assert labels["role"] == "recorder"
        assert labels["identity"].startswith("recorder@") and labels["identity"].endswith(f":{server.port}")
        m.set_instance("recorder", "rec-b")
        resp = await asyncio.to_thread(httpx.get, server.url, timeout=10)
        assert 'polybot_instance_info{identity="rec-b",role="recorder"} 1.0' in resp.text
    finally:
        await server.aclose()


def test_prometheus_yml_scrapes_every_role() -> None:
    """One job per role; promtool's check of the same file runs in test_metrics_dashboard."""
    text = (REPO_ROOT / "observability" / "prometheus.yml").read_text()
    jobs = re.findall(r"^\s*- job_name:\s*(\S+)\s*$", text, flags=re.M)
    assert jobs == ["polybot", "polybot-feed-worker", "polybot-recorder"]
    for port in (9108, 9110, 9111, 9112):
        assert f'"127.0.0.1:{port}"' in text
    assert text.count("metrics_path: /metrics") == len(jobs)
