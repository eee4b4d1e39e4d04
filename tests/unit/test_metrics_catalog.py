"""The metric catalog's conventions, the fast histogram, label bounding, and the bare exposition."""

from __future__ import annotations

import random
import re
import shutil

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.metrics.catalog import CATALOG, SECTIONS, exported_sample_names
from core.metrics.collect import Metrics
from core.metrics.hist import FastHistogram
from core.metrics.labels import BoundedLabels, label_value
from tests.procs import run

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def promtool_check(text: bytes) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    proc = run([promtool, "check", "metrics"], input=text, timeout_s=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    # promtool prints lint problems without failing on some versions: there must be none
    assert proc.stdout.strip() == b"" and proc.stderr.strip() == b"", proc.stdout.decode() + proc.stderr.decode()


def test_catalog_names_follow_prometheus_conventions() -> None:
    names = [spec.name for spec in CATALOG]
    assert len(names) == len(set(names)), "duplicate metric names"
    sections = {s for s, _ in SECTIONS}
    for spec in CATALOG:
        assert spec.name.startswith("polybot_"), spec.name
        assert SNAKE.match(spec.name), spec.name
        assert spec.help and spec.help.endswith("."), spec.name
        assert spec.section in sections, spec.name
        if spec.kind == "counter":
            assert spec.name.endswith("_total"), spec.name
        else:
            assert not spec.name.endswith(("_total", "_count", "_sum", "_bucket")), spec.name
        if spec.kind == "histogram":
            assert list(spec.buckets) == sorted(spec.buckets) and spec.buckets, spec.name
        # no milliseconds or other non-base time units
        assert not re.search(r"_(ms|millis|milliseconds|us|ns|minutes|hours)(_|$)", spec.name), spec.name
        for label in spec.labels:
            assert SNAKE.match(label) and label != "le", (spec.name, label)


def test_no_per_asset_labels_except_the_opt_in_top_n() -> None:
    with_asset = [spec.name for spec in CATALOG if {"asset", "asset_id", "token_id", "market"} & set(spec.labels)]
    assert with_asset == ["polybot_book_age_seconds"]


def test_every_issue_metric_is_in_the_catalog() -> None:
    names = exported_sample_names()
    wanted = [
        "polybot_ws_events_total",  # frames by event type
        "polybot_feed_input_errors_total",  # decode/validation errors by reason
        "polybot_book_integrity_faults_total",
        "polybot_ws_connection_state",
        "polybot_ws_reconnects_total",
        "polybot_ws_last_frame_age_seconds",
        "polybot_book_staleness_max_seconds",
        "polybot_feed_receive_to_apply_seconds_bucket",
        "polybot_writer_receive_to_commit_seconds_bucket",
        "polybot_writer_queue_depth",
        "polybot_writer_batch_rows_bucket",
        "polybot_strategy_evaluations_total",
        "polybot_strategy_opportunities_total",
        "polybot_strategy_opportunities_taken_total",
        "polybot_strategy_opportunities_missed_total",
        "polybot_risk_refusals_total",
        "polybot_orders_total",
        "polybot_relayer_request_duration_seconds_bucket",
        "polybot_relayer_errors_total",
        "polybot_fills_total",
        "polybot_exposure_pusd",
        "polybot_realised_pnl_pusd",
        "polybot_armed",
        "polybot_commands_total",
        "polybot_alerts_total",
    ]
    assert [w for w in wanted if w not in names] == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_histogram_matches_prometheus_client(seed: int) -> None:
    bounds = (0.001, 0.01, 0.1, 1.0, 10.0)
    rng = random.Random(seed)
    # include values exactly on bounds: "le" is inclusive
    values = [rng.choice([*bounds, rng.uniform(0, 20), rng.expovariate(10)]) for _ in range(500)]
    reg = CollectorRegistry()
    ref = Histogram("ref_seconds", "reference", buckets=bounds, registry=reg)
    fast = FastHistogram(bounds)
    for v in values[:250]:
        ref.observe(v)
        fast.observe(v)
    fast.observe_many(values[250:])
    for v in values[250:]:
        ref.observe(v)
    [fam] = [f for f in text_string_to_metric_families(generate_latest(reg).decode()) if f.name == "ref_seconds"]
    expected = {s.labels["le"]: s.value for s in fam.samples if s.name.endswith("_bucket")}
    got = dict(fast.cumulative())
    assert {float(k): v for k, v in got.items()} == {float(k): v for k, v in expected.items()}
    assert fast.count == len(values)
    assert fast.sum == pytest.approx(sum(values))


def test_fast_histogram_quantile_is_the_bucket_upper_bound() -> None:
    h = FastHistogram((1, 2, 4))
    assert h.quantile(0.5) is None
    h.observe_many([0.5, 1.5, 1.7, 3.0])
    assert h.quantile(0.25) == 1
    assert h.quantile(0.5) == 2
    assert h.quantile(1.0) == 4
    h.observe(100)
    assert h.quantile(1.0) == float("inf")


def test_label_values_are_sanitised_and_bounded() -> None:
    assert label_value("not_armed") == "not_armed"
    assert label_value('  weird label\n{}"x') == "weird_label_x"
    assert label_value("") == "unknown"
    assert len(label_value("x" * 500)) == 48
    bounded = BoundedLabels(3, ["a"])
    assert [bounded(v) for v in ["a", "b", "c", "d", "b", "e"]] == ["a", "b", "c", "other", "b", "other"]


def test_record_command_normalises_and_bounds_commands() -> None:
    m = Metrics(process_metrics=False)
    m.record_command("telegram", "/Status@PolybotBot", "ok")
    m.record_command("telegram", "/status extra args", "ok")
    m.record_command("cli", "arm", "refused")
    for i in range(100):  # users can type anything: the label set stays bounded
        m.record_command("telegram", f"/junk{i}", "error")
    fams = {f.name: f for f in text_string_to_metric_families(m.exposition().decode())}
    samples = {
        (s.labels["front_end"], s.labels["command"], s.labels["result"]): s.value
        for s in fams["polybot_commands"].samples
    }
    assert samples[("telegram", "status", "ok")] == 2
    assert samples[("cli", "arm", "refused")] == 1
    commands = {c for _, c, _ in samples}
    assert len(commands) <= 64 + 1 and "other" in commands  # 64 distinct, then "other"
    assert sum(samples.values()) == 103


def test_unbound_exposition_has_every_family_and_passes_promtool() -> None:
    m = Metrics()
    text = m.exposition()
    helped = set(re.findall(rb"^# HELP (\S+)", text, re.M))
    for spec in CATALOG:
        assert spec.name.encode() in helped, spec.name
    # process metrics come from prometheus_client's own collectors
    assert b"process_resident_memory_bytes" in text
    # nothing bound: counters the process owns are there, component values are not invented
    assert b"polybot_metrics_collect_timeouts_total 0.0" in text
    assert b"\npolybot_ws_frames_total " not in text
    promtool_check(text)


def test_top_n_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="top_assets"):
        Metrics(top_assets=-1)
