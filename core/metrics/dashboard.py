"""The Grafana dashboard, as code: ``observability/grafana-dashboard.json`` is this module's output.

Regenerate after changing a panel (a test fails when the file and this module disagree)::

    uv run python -m core.metrics.dashboard --out observability/grafana-dashboard.json

Every panel queries the Prometheus data source picked in the ``datasource`` variable and filters
on the ``job`` variable; another test checks that every metric name in every expression is one
the code exports (:mod:`core.metrics.catalog`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
JOB = 'job=~"$job"'
RI = "$__rate_interval"
DASHBOARD_UID = "polybot-overview"
OUT = Path(__file__).resolve().parents[2] / "observability" / "grafana-dashboard.json"


def sel(name: str, *matchers: str) -> str:
    """``name{job=~"$job", ...}``: every selector is filtered on the job variable."""
    return f"{name}{{{', '.join((JOB, *matchers))}}}"


def rate(name: str, *matchers: str) -> str:
    return f"rate({sel(name, *matchers)}[{RI}])"


def increase(name: str, *matchers: str) -> str:
    return f"increase({sel(name, *matchers)}[{RI}])"


def quantile(q: float, name: str, *by: str) -> str:
    group = ", ".join(("le", *by))
    return f"histogram_quantile({q}, sum by ({group}) ({rate(name + '_bucket')}))"


INFO = f"max by (instance, identity) ({sel('polybot_instance_info')})"


def per_instance(expr: str) -> str:
    """``expr`` (aggregated ``by (instance)``) labelled with each process's identity (its
    ``polybot_instance_info``): legends read ``{{identity}}``."""
    return f"({expr}) * on (instance) group_left (identity) {INFO}"


@dataclass
class Q:
    expr: str
    legend: str = ""


@dataclass
class P:
    title: str
    queries: list[Q]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat
    description: str = ""
    width: int = 8
    height: int = 8
    stack: bool = False
    mappings: list[dict[str, Any]] = field(default_factory=list)
    thresholds: list[tuple[str, float | None]] = field(default_factory=lambda: [("green", None)])


ROWS: list[tuple[str, list[P]]] = [
    (
        "Feed health",
        [
            P(
                "Connections up",
                [Q("sum(" + sel("polybot_ws_connection_state", 'state="connected"') + ")", "connected")],
                kind="stat",
                width=4,
                description="Websocket connections in state connected.",
                thresholds=[("red", None), ("green", 1)],
            ),
            P(
                "Frames / s",
                [Q(f"sum({rate('polybot_ws_frames_total')})", "frames")],
                kind="stat",
                width=4,
                unit="ops",
            ),
            P(
                "Worst seconds since last frame",
                [Q(f"max({sel('polybot_ws_last_frame_age_seconds')})", "worst connection")],
                kind="stat",
                width=4,
                unit="s",
                thresholds=[("green", None), ("orange", 30), ("red", 120)],
            ),
            P(
                "Receive -> apply p99",
                [Q(quantile(0.99, "polybot_feed_receive_to_apply_seconds"), "p99")],
                kind="stat",
                width=4,
                unit="s",
                thresholds=[("green", None), ("orange", 0.01), ("red", 0.1)],
            ),
            P(
                "Reconnects (range)",
                [Q(f"sum(increase({sel('polybot_ws_reconnects_total')}[$__range]))", "reconnects")],
                kind="stat",
                width=4,
                thresholds=[("green", None), ("orange", 1), ("red", 10)],
            ),
            P(
                "Dropped frames (range)",
                [Q(f"sum(increase({sel('polybot_ws_dropped_frames_total')}[$__range]))", "dropped")],
                kind="stat",
                width=4,
                thresholds=[("green", None), ("red", 1)],
            ),
            P(
                "Events / s by wire type",
                [Q(f"sum by (event_type) ({rate('polybot_ws_events_total')})", "{{event_type}}")],
                unit="ops",
                stack=True,
            ),
            P(
                "Seconds since last frame, per connection",
                [Q(f"max by (connection) ({sel('polybot_ws_last_frame_age_seconds')})", "conn {{connection}}")],
                unit="s",
            ),
            P(
                "Receive -> apply latency",
                [
                    Q(quantile(0.5, "polybot_feed_receive_to_apply_seconds"), "p50"),
                    Q(quantile(0.99, "polybot_feed_receive_to_apply_seconds"), "p99"),
                    Q(
                        f"sum({rate('polybot_feed_receive_to_apply_seconds_sum')}) / "
                        f"sum({rate('polybot_feed_receive_to_apply_seconds_count')})",
                        "mean",
                    ),
                ],
                unit="s",
            ),
            P(
                "Connection state",
                [Q(f"sum by (state) ({sel('polybot_ws_connection_state')})", "{{state}}")],
                stack=True,
            ),
            P(
                "Reconnects and disconnects",
                [
                    Q(f"sum by (connection) ({increase('polybot_ws_reconnects_total')})", "reconnect {{connection}}"),
                    Q(
                        f"sum by (connection) ({increase('polybot_ws_disconnects_total')})",
                        "dead {{connection}}",
                    ),
                ],
            ),
            P(
                "Received bytes / s and PONGs",
                [
                    Q(f"sum({rate('polybot_ws_received_bytes_total')})", "bytes/s"),
                    Q(f"sum({rate('polybot_ws_pongs_total')})", "PONG/s"),
                ],
                unit="Bps",
            ),
            P(
                "Dropped frames and callback errors",
                [
                    Q(f"sum by (reason) ({increase('polybot_ws_dropped_frames_total')})", "dropped {{reason}}"),
                    Q(f"sum({increase('polybot_ws_callback_errors_total')})", "ws callback errors"),
                    Q(f"sum({increase('polybot_pipeline_sink_errors_total')})", "sink errors"),
                    Q(f"sum by (stage) ({increase('polybot_latency_samples_skipped_total')})", "skipped {{stage}}"),
                ],
                width=16,
            ),
        ],
    ),
    (
        "Market-data bus",
        [
            P(
                "Processes by role",
                [Q(f"count by (role) ({sel('polybot_instance_info')})", "{{role}}")],
                kind="stat",
                width=6,
                description="Processes that answer scrapes, by role (service, feed-worker, recorder).",
            ),
            P(
                "Shard leases held",
                [
                    Q(
                        per_instance(f"max by (instance, shard) ({sel('polybot_bus_shard_active')})"),
                        "{{shard}} {{identity}}",
                    )
                ],
                kind="stat",
                width=6,
                description="1 where a feed worker holds its shard's lease (active), 0 on standby.",
            ),
            P(
                "Publish errors (range)",
                [Q(f"sum(increase({sel('polybot_bus_publish_errors_total')}[$__range]))", "errors")],
                kind="stat",
                width=6,
                thresholds=[("green", None), ("red", 1)],
            ),
            P(
                "Sequence gaps (range)",
                [Q(f"sum(increase({sel('polybot_bus_sequence_gaps_total')}[$__range]))", "gaps")],
                kind="stat",
                width=6,
                thresholds=[("green", None), ("orange", 1), ("red", 10)],
            ),
            P(
                "Worker lag p99, per instance",
                [
                    Q(
                        per_instance(
                            f"histogram_quantile(0.99, sum by (le, instance) "
                            f"({rate('polybot_bus_worker_lag_seconds_bucket')}))"
                        ),
                        "{{identity}}",
                    )
                ],
                unit="s",
                description="Feed worker: from a frame's receive time until JetStream acknowledged its event.",
            ),
            P(
                "Worker -> consumer latency p99, per instance",
                [
                    Q(
                        per_instance(
                            f"histogram_quantile(0.99, sum by (le, instance) "
                            f"({rate('polybot_bus_receive_lag_seconds_bucket')}))"
                        ),
                        "{{identity}}",
                    )
                ],
                unit="s",
                description="Trader or recorder: from a frame's receive time at the worker until the event arrived.",
            ),
            P(
                "Events / s, per instance",
                [
                    Q(
                        per_instance(f"sum by (instance) ({rate('polybot_bus_published_total')})"),
                        "published {{identity}}",
                    ),
                    Q(
                        per_instance(f"sum by (instance) ({rate('polybot_bus_received_total')})"),
                        "received {{identity}}",
                    ),
                ],
                unit="ops",
            ),
            P(
                "Stream bytes and messages",
                [
                    Q(f"max by (stream) ({sel('polybot_bus_stream_bytes')})", "bytes {{stream}}"),
                    Q(f"max by (stream) ({sel('polybot_bus_stream_messages')})", "messages {{stream}}"),
                ],
                unit="bytes",
                description="What the JetStream stream holds, as its owners read it; bounded by max_bytes and max_age.",
            ),
            P(
                "Consumer pending",
                [
                    Q(f"max by (consumer) ({sel('polybot_bus_consumer_pending')})", "not delivered {{consumer}}"),
                    Q(f"max by (consumer) ({sel('polybot_bus_consumer_ack_pending')})", "not acked {{consumer}}"),
                ],
                description="A durable consumer's backlog: messages not delivered yet, and delivered but not acked.",
            ),
            P(
                "Sequence gaps and resnapshots, per instance",
                [
                    Q(
                        per_instance(f"sum by (instance) ({increase('polybot_bus_sequence_gaps_total')})"),
                        "gaps {{identity}}",
                    ),
                    Q(
                        per_instance(f"sum by (instance) ({increase('polybot_bus_resnapshots_total')})"),
                        "resnapshots {{identity}}",
                    ),
                    Q(
                        per_instance(f"sum by (instance) ({increase('polybot_bus_snapshots_served_total')})"),
                        "served {{identity}}",
                    ),
                ],
            ),
            P(
                "Recorder events / s by outcome, per instance",
                [
                    Q(
                        per_instance(f"sum by (instance, outcome) ({rate('polybot_recorder_events_total')})"),
                        "{{outcome}} {{identity}}",
                    ),
                    Q(
                        per_instance(f"sum by (instance) ({rate('polybot_recorder_redelivered_total')})"),
                        "redelivered {{identity}}",
                    ),
                ],
                unit="ops",
                description="stored: committed, then acknowledged; duplicate: a redelivery already stored.",
            ),
            P(
                "Published bytes / s, per instance",
                [
                    Q(
                        per_instance(f"sum by (instance) ({rate('polybot_bus_published_bytes_total')})"),
                        "{{identity}}",
                    )
                ],
                unit="Bps",
            ),
        ],
    ),
    (
        "Book integrity",
        [
            P(
                "Books by status",
                [Q(f"sum by (status) ({sel('polybot_books')})", "{{status}}")],
                stack=True,
            ),
            P(
                "Worst book staleness",
                [Q(f"max({sel('polybot_book_staleness_max_seconds')})", "worst book")],
                unit="s",
            ),
            P(
                "Books not ok",
                [Q("sum(" + sel("polybot_books", 'status!="ok"') + ")", "not ok")],
                kind="stat",
                thresholds=[("green", None), ("orange", 1)],
            ),
            P(
                "Decode / validation errors by reason",
                [Q(f"sum by (reason) ({increase('polybot_feed_input_errors_total')})", "{{reason}}")],
                stack=True,
            ),
            P(
                "Integrity faults by kind",
                [Q(f"sum by (kind) ({increase('polybot_book_integrity_faults_total')})", "{{kind}}")],
                stack=True,
            ),
            P(
                "Status transitions and reconnect resets",
                [
                    Q(f"sum by (status) ({increase('polybot_book_status_changes_total')})", "-> {{status}}"),
                    Q(f"sum({increase('polybot_pipeline_reconnect_resets_total')})", "reconnect resets"),
                    Q(f"sum({increase('polybot_feed_hook_failures_total')})", "hook failures"),
                ],
            ),
        ],
    ),
    (
        "Storage",
        [
            P(
                "Writer queue",
                [
                    Q(f"sum({sel('polybot_writer_queue_depth')})", "queued"),
                    Q(f"sum({sel('polybot_writer_pending_rows')})", "pending (queued + in flight)"),
                    Q(f"sum({sel('polybot_writer_queue_capacity')})", "capacity"),
                ],
            ),
            P(
                "Rows / s",
                [
                    Q(f"sum({rate('polybot_writer_rows_written_total')})", "written"),
                    Q(f"sum({rate('polybot_writer_rows_enqueued_total')})", "enqueued"),
                    Q(f"sum({rate('polybot_writer_rows_rejected_total')})", "rejected by db"),
                    Q(f"sum({rate('polybot_writer_queue_full_total')})", "refused: queue full"),
                    Q(f"sum({rate('polybot_pipeline_rows_refused_total')})", "feed rows refused"),
                ],
                unit="ops",
            ),
            P(
                "Receive -> commit latency",
                [
                    Q(quantile(0.5, "polybot_writer_receive_to_commit_seconds"), "p50"),
                    Q(quantile(0.99, "polybot_writer_receive_to_commit_seconds"), "p99"),
                    Q(f"max({sel('polybot_writer_last_commit_duration_seconds')})", "last commit duration"),
                ],
                unit="s",
            ),
            P(
                "Batch size (rows)",
                [
                    Q(quantile(0.5, "polybot_writer_batch_rows"), "p50"),
                    Q(quantile(0.99, "polybot_writer_batch_rows"), "p99"),
                    Q(
                        f"sum({rate('polybot_writer_batch_rows_sum')}) / sum({rate('polybot_writer_batch_rows_count')})",
                        "mean",
                    ),
                    Q(f"max({sel('polybot_writer_last_batch_rows')})", "last"),
                ],
            ),
            P(
                "Commits, errors and retries / s",
                [
                    Q(f"sum({rate('polybot_writer_batches_total')})", "commits"),
                    Q(f"sum({rate('polybot_writer_errors_total')})", "errors"),
                    Q(f"sum({rate('polybot_writer_retries_total')})", "retries"),
                ],
                unit="ops",
            ),
        ],
    ),
    (
        "Strategies",
        [
            P(
                "Evaluations / s",
                [Q(f"sum by (strategy) ({rate('polybot_strategy_evaluations_total')})", "{{strategy}}")],
                unit="ops",
            ),
            P(
                "Opportunities seen / taken / missed",
                [
                    Q(f"sum by (strategy) ({increase('polybot_strategy_opportunities_total')})", "seen {{strategy}}"),
                    Q(
                        f"sum by (strategy) ({increase('polybot_strategy_opportunities_taken_total')})",
                        "taken {{strategy}}",
                    ),
                    Q(
                        f"sum by (strategy) ({increase('polybot_strategy_opportunities_missed_total')})",
                        "missed {{strategy}}",
                    ),
                ],
            ),
            P(
                "Missed opportunities by reason",
                [
                    Q(
                        f"sum by (reason) ({increase('polybot_strategy_opportunities_missed_total')})",
                        "{{reason}}",
                    )
                ],
                stack=True,
            ),
            P(
                "Quoter decisions",
                [Q(f"sum by (action) ({increase('polybot_quoter_decisions_total')})", "{{action}}")],
                stack=True,
            ),
            P(
                "Runners",
                [Q(f"sum by (strategy) ({sel('polybot_strategy_runners')})", "{{strategy}}")],
                kind="stat",
            ),
        ],
    ),
    (
        "Dutch groups",
        [
            P(
                "Groups sent / completed / one-legged / failed",
                [
                    Q(f"sum({increase('polybot_dutch_groups_sent_total')})", "sent"),
                    Q(f"sum by (outcome) ({increase('polybot_dutch_groups_ended_total')})", "{{outcome}}"),
                ],
                description="Dutch groups sent, and how each first ended (a failed group filled no leg).",
            ),
            P(
                "One-legged groups by cause",
                [Q(f"sum by (cause) ({increase('polybot_dutch_groups_one_legged_total')})", "{{cause}}")],
                stack=True,
                description="venue_rejected, book_moved (a FOK/FAK found no liquidity at its limit), "
                "latency_budget_exceeded (timed out, or answered after the latency budget).",
            ),
            P(
                "One-legged groups balanced / not yet",
                [
                    Q(f"sum by (policy) ({increase('polybot_dutch_groups_balanced_total')})", "{{policy}}"),
                    Q(f"sum({sel('polybot_dutch_groups_unbalanced')})", "unbalanced"),
                ],
            ),
            P(
                "Edge: expected vs realised (pUSD)",
                [Q(f"sum by (kind) ({sel('polybot_dutch_edge_pusd')})", "{{kind}}")],
                description="Since start: the strategy's edge at decision time vs what the fills and unwinds booked.",
            ),
            P(
                "Complete sets",
                [Q(f"sum({sel('polybot_complete_sets')})", "sets")],
                kind="stat",
                width=4,
                description="Sets held in full (binary YES+NO, YES of every member of a neg-risk event): 1 pUSD each.",
            ),
            P(
                "Locked edge (pUSD)",
                [Q(f"sum({sel('polybot_locked_edge_pusd')})", "locked")],
                kind="stat",
                width=4,
                description="Complete sets x 1 pUSD minus what those sets cost, fees included.",
            ),
        ],
    ),
    (
        "Execution",
        [
            P(
                "Mode",
                [Q(f"max by (mode) ({sel('polybot_trading_mode')}) == 1", "{{mode}}")],
                kind="stat",
                width=4,
            ),
            P("Exposure", [Q(f"sum({sel('polybot_exposure_pusd')})", "exposure")], kind="stat", width=4),
            P("Realised PnL", [Q(f"sum({sel('polybot_realised_pnl_pusd')})", "realised")], kind="stat", width=4),
            P(
                "Realised PnL today",
                [Q(f"sum({sel('polybot_realised_pnl_today_pusd')})", "today")],
                kind="stat",
                width=4,
            ),
            P(
                "Unrealised PnL",
                [Q(f"sum({sel('polybot_unrealised_pnl_pusd')})", "unrealised")],
                kind="stat",
                width=4,
            ),
            P(
                "Open orders / positions",
                [
                    Q(f"sum({sel('polybot_open_orders')})", "orders"),
                    Q(f"sum({sel('polybot_positions_open')})", "positions"),
                ],
                kind="stat",
                width=4,
            ),
            P(
                "Orders by status",
                [Q(f"sum by (status) ({increase('polybot_orders_total')})", "{{status}}")],
                stack=True,
            ),
            P(
                "Relayer latency by action",
                [
                    Q(quantile(0.5, "polybot_relayer_request_duration_seconds", "action"), "p50 {{action}}"),
                    Q(quantile(0.99, "polybot_relayer_request_duration_seconds", "action"), "p99 {{action}}"),
                ],
                unit="s",
            ),
            P(
                "Relayer errors by class",
                [Q(f"sum by (error_class) ({increase('polybot_relayer_errors_total')})", "{{error_class}}")],
                stack=True,
            ),
            P(
                "Relayer calls by outcome",
                [
                    Q(
                        f"sum by (action, outcome) ({increase('polybot_relayer_requests_total')})",
                        "{{action}} {{outcome}}",
                    )
                ],
            ),
            P(
                "Fills",
                [
                    Q(f"sum by (side) ({increase('polybot_fills_total')})", "fills {{side}}"),
                    Q(f"sum by (side) ({increase('polybot_fill_notional_pusd_total')})", "notional {{side}}"),
                    Q(f"sum({increase('polybot_fill_fees_pusd_total')})", "fees"),
                ],
            ),
            P(
                "Exposure and PnL",
                [
                    Q(f"sum({sel('polybot_exposure_pusd')})", "exposure"),
                    Q(f"sum({sel('polybot_realised_pnl_pusd')})", "realised"),
                    Q(f"sum({sel('polybot_unrealised_pnl_pusd')})", "unrealised"),
                ],
            ),
        ],
    ),
    (
        "Risk",
        [
            P(
                "Armed",
                [Q(f"max({sel('polybot_armed')})", "armed")],
                kind="stat",
                width=4,
                mappings=[
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "DISARMED", "color": "green", "index": 0},
                            "1": {"text": "ARMED", "color": "red", "index": 1},
                        },
                    }
                ],
            ),
            P(
                "Error breaker: recent errors",
                [Q(f"max({sel('polybot_risk_breaker_recent_errors')})", "errors in window")],
                kind="stat",
                width=4,
                thresholds=[("green", None), ("orange", 1), ("red", 5)],
            ),
            P(
                "Refusals by reason",
                [Q(f"sum by (reason) ({increase('polybot_risk_refusals_total')})", "{{reason}}")],
                stack=True,
                width=16,
            ),
            P(
                "Exposure vs limit",
                [
                    Q(f"sum({sel('polybot_exposure_pusd')})", "exposure"),
                    Q(
                        "max(" + sel("polybot_risk_limit_pusd", 'limit="max_total_exposure"') + ")",
                        "max total exposure",
                    ),
                ],
            ),
            P(
                "Daily PnL vs loss limit",
                [
                    Q(f"sum({sel('polybot_realised_pnl_today_pusd')})", "realised today"),
                    Q("-max(" + sel("polybot_risk_limit_pusd", 'limit="daily_loss_limit"') + ")", "loss limit"),
                ],
            ),
            P(
                "Arm / disarm changes",
                [Q(f"sum by (state) ({increase('polybot_risk_state_changes_total')})", "{{state}}")],
            ),
        ],
    ),
    (
        "Bot",
        [
            P(
                "Commands by command",
                [Q(f"sum by (command) ({increase('polybot_commands_total')})", "{{command}}")],
                stack=True,
            ),
            P(
                "Commands by result and front end",
                [Q(f"sum by (front_end, result) ({increase('polybot_commands_total')})", "{{front_end}} {{result}}")],
                stack=True,
            ),
            P(
                "Alerts by kind",
                [Q(f"sum by (kind) ({increase('polybot_alerts_total')})", "{{kind}}")],
                stack=True,
            ),
            P(
                "Active alerts",
                [Q(f"sum by (kind) ({sel('polybot_alerts_active')})", "{{kind}}")],
                stack=True,
            ),
            P(
                "Event bus",
                [
                    Q(f"sum({rate('polybot_events_published_total')})", "events/s"),
                    Q(f"sum({rate('polybot_event_handler_errors_total')})", "handler errors/s"),
                ],
                unit="ops",
            ),
            P(
                "Process and scrapes",
                [
                    Q(f"sum({sel('process_resident_memory_bytes')})", "resident memory"),
                    Q(f"sum({increase('polybot_metrics_collect_timeouts_total')})", "scrape timeouts"),
                    Q(
                        f"sum by (component) ({increase('polybot_metrics_collect_errors_total')})",
                        "collect errors {{component}}",
                    ),
                ],
                unit="bytes",
            ),
        ],
    ),
]


def _panel(p: P, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {"refId": chr(ord("A") + i), "datasource": DS, "expr": q.expr, "legendFormat": q.legend, "range": True}
        for i, q in enumerate(p.queries)
    ]
    defaults: dict[str, Any] = {
        "unit": p.unit,
        "mappings": p.mappings,
        "thresholds": {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in p.thresholds]},
    }
    panel: dict[str, Any] = {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DS,
        "gridPos": {"h": p.height if p.kind != "stat" else 4, "w": p.width, "x": x, "y": y},
        "targets": targets,
    }
    if p.kind == "stat":
        defaults["color"] = {"mode": "thresholds"}
        panel["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    else:
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if p.stack else 0,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
        }
        panel["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    panel["fieldConfig"] = {"defaults": defaults, "overrides": []}
    return panel


def build_dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid = 0
    y = 0
    for title, row in ROWS:
        pid += 1
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = 0
        line_height = 0
        for p in row:
            height = 4 if p.kind == "stat" else p.height
            if x + p.width > 24:
                x = 0
                y += line_height
                line_height = 0
            pid += 1
            panels.append(_panel(p, pid, x, y))
            x += p.width
            line_height = max(line_height, height)
        y += line_height
    return {
        "title": "Polybot",
        "uid": DASHBOARD_UID,
        "description": "Polybot: feed health, market-data bus, book integrity, storage, strategies, execution, risk and bot.",
        "tags": ["polybot", "polymarket"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                    "includeAll": False,
                    "multi": False,
                },
                {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": DS,
                    "definition": "label_values(polybot_metrics_collect_timeouts_total, job)",
                    "query": {
                        "query": "label_values(polybot_metrics_collect_timeouts_total, job)",
                        "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    },
                    "current": {},
                    "hide": 0,
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                    "options": [],
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the Polybot Grafana dashboard JSON")
    parser.add_argument("--out", type=Path, help=f"output file (default: stdout; the repo's is {OUT})")
    args = parser.parse_args(argv)
    text = render()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
