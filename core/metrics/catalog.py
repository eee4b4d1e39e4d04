"""Every Prometheus metric Polybot exports: name, type, help, labels, dashboard section.

This table is the single source of metric names. The collector in :mod:`core.metrics.collect` emits
exactly these families (and fails loudly in tests if it emits anything else); the dashboard
test checks every PromQL expression in ``observability/grafana-dashboard.json`` against
:func:`exported_sample_names`.

Naming follows Prometheus conventions: ``polybot_`` prefix, base units in the name (``_seconds``,
``_bytes``; money is ``_pusd``, the venue's collateral token), ``_total`` on counters. Label
values come from bounded sets (reasons, kinds, statuses, connection indexes); nothing is labelled
by asset unless a top-N is configured (``polybot_book_age_seconds``, off by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

# dashboard rows / summary sections, in display order
SECTIONS: tuple[tuple[str, str], ...] = (
    ("feed", "Feed health"),
    ("bus", "Market-data bus"),
    ("books", "Book integrity"),
    ("storage", "Storage"),
    ("strategies", "Strategies"),
    ("execution", "Execution"),
    ("risk", "Risk"),
    ("bot", "Bot"),
)

# receive -> apply is microseconds when healthy; a blocked loop shows up in the upper buckets
APPLY_BUCKETS: tuple[float, ...] = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
COMMIT_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS: tuple[float, ...] = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000)
# a hop through NATS on one host is well under a millisecond; across hosts, a few
BUS_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
RELAYER_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str  # counters end in _total (as exposed)
    kind: Kind
    help: str
    section: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


def _c(name: str, help: str, section: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, "counter", help, section, labels)


def _g(name: str, help: str, section: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, "gauge", help, section, labels)


def _h(name: str, help: str, section: str, buckets: tuple[float, ...], *labels: str) -> MetricSpec:
    return MetricSpec(name, "histogram", help, section, labels, buckets)


CATALOG: tuple[MetricSpec, ...] = (
    # ---- feed health: websocket connections and the frame pipeline
    _c("polybot_ws_frames_total", "Market-channel frames decoded by the feed processor (valid or not).", "feed"),
    _c(
        "polybot_ws_events_total",
        "Market-channel events applied, by wire event_type (one frame can carry several).",
        "feed",
        "event_type",
    ),
    _g(
        "polybot_ws_connection_state",
        "1 for the state each websocket connection is in, 0 for the others.",
        "feed",
        "connection",
        "state",
    ),
    _g("polybot_ws_connection_assets", "Assets subscribed on each websocket connection.", "feed", "connection"),
    _c("polybot_ws_reconnects_total", "Websocket reconnections, by connection index.", "feed", "connection"),
    _c(
        "polybot_ws_disconnects_total",
        "Websocket connections declared dead, by connection index.",
        "feed",
        "connection",
    ),
    _c(
        "polybot_ws_connection_frames_total",
        "Frames delivered by each websocket connection (PONGs excluded).",
        "feed",
        "connection",
    ),
    _c("polybot_ws_received_bytes_total", "Bytes received on each websocket connection.", "feed", "connection"),
    _c("polybot_ws_pongs_total", "Heartbeat PONG answers received, by connection index.", "feed", "connection"),
    _g(
        "polybot_ws_last_frame_age_seconds",
        "Seconds since each connection delivered its last market frame.",
        "feed",
        "connection",
    ),
    _c("polybot_ws_dropped_frames_total", "Frames the websocket client did not deliver, by reason.", "feed", "reason"),
    _c("polybot_ws_callback_errors_total", "Exceptions raised by feed callbacks (counted, not fatal).", "feed"),
    _h(
        "polybot_feed_receive_to_apply_seconds",
        "From a frame's receive time until its events were applied to the books and handed on.",
        "feed",
        APPLY_BUCKETS,
    ),
    _c(
        "polybot_latency_samples_skipped_total",
        "Latency samples skipped because the receive time was not a live clock reading (a replay), by stage.",
        "feed",
        "stage",
    ),
    _c("polybot_pipeline_sink_errors_total", "Exceptions raised by feed event sinks (counted, not fatal).", "feed"),
    _c(
        "polybot_pipeline_reconnect_resets_total",
        "Times a dead or re-established connection put its books back to awaiting_snapshot.",
        "feed",
    ),
    # ---- market-data bus (issue 20): feed workers publish into JetStream, traders and recorders
    # consume; the stream and consumer gauges are read from JetStream by whichever process owns them
    _c(
        "polybot_bus_published_total",
        "Events a feed worker published into the JetStream stream (acknowledged), by kind.",
        "bus",
        "kind",
    ),
    _c("polybot_bus_published_bytes_total", "Encoded bytes of the events a feed worker published.", "bus"),
    _c("polybot_bus_publish_errors_total", "Publishes that failed or were not acknowledged by JetStream.", "bus"),
    _h(
        "polybot_bus_worker_lag_seconds",
        "Feed worker lag: from a frame's receive time at the worker until JetStream acknowledged its event.",
        "bus",
        BUS_BUCKETS,
    ),
    _g(
        "polybot_bus_shard_active",
        "1 while this feed worker holds the lease of the shard, 0 on standby.",
        "bus",
        "shard",
    ),
    _c("polybot_bus_snapshots_served_total", "Fresh snapshots a feed worker sent on request (after a gap).", "bus"),
    _c("polybot_bus_received_total", "Events a bus consumer (trader or recorder) received, by kind.", "bus", "kind"),
    _h(
        "polybot_bus_receive_lag_seconds",
        "From a frame's receive time at the feed worker until a consumer received its event.",
        "bus",
        BUS_BUCKETS,
    ),
    _c(
        "polybot_bus_sequence_gaps_total",
        "Per-asset sequence gaps a consumer saw (an event missing between two it received).",
        "bus",
    ),
    _c("polybot_bus_resnapshots_total", "Fresh snapshots a trader asked the owning worker for after a gap.", "bus"),
    _g("polybot_bus_stream_bytes", "Bytes the JetStream stream holds (bounded by its max_bytes).", "bus", "stream"),
    _g("polybot_bus_stream_messages", "Messages the JetStream stream holds.", "bus", "stream"),
    _g(
        "polybot_bus_consumer_pending",
        "Messages in the stream a durable consumer has not delivered yet (its backlog).",
        "bus",
        "consumer",
    ),
    _g(
        "polybot_bus_consumer_ack_pending",
        "Messages a durable consumer delivered that are not acknowledged yet.",
        "bus",
        "consumer",
    ),
    _c(
        "polybot_recorder_events_total",
        "Bus events the recorder handled, by outcome: stored (committed, then acknowledged), "
        "duplicate (already stored: a redelivery), invalid (undecodable, dropped).",
        "bus",
        "outcome",
    ),
    _c("polybot_recorder_redelivered_total", "Bus events the recorder received more than once (redeliveries).", "bus"),
    # ---- book integrity
    _c(
        "polybot_feed_input_errors_total",
        "Frames or entries rejected by decoding or validation, by reason.",
        "books",
        "reason",
    ),
    _c("polybot_book_integrity_faults_total", "Book integrity faults, by kind.", "books", "kind"),
    _g("polybot_books", "Books by status.", "books", "status"),
    _c("polybot_book_status_changes_total", "Book status transitions, by the status entered.", "books", "status"),
    _g(
        "polybot_book_staleness_max_seconds",
        "Worst book staleness: seconds since the least recently updated seeded book changed.",
        "books",
    ),
    _g(
        "polybot_book_age_seconds",
        "Seconds since the book last changed, for the configured top-N stalest books only (off by default).",
        "books",
        "asset",
    ),
    _c("polybot_feed_hook_failures_total", "Exceptions raised by book inconsistency hooks.", "books"),
    _c(
        "polybot_feed_late_frames_total",
        "Frames for assets just unsubscribed, already on their way when the unsubscribe left (expected, not rejected input).",
        "books",
    ),
    # ---- storage (batched writer)
    _g("polybot_writer_queue_depth", "Rows queued for the database writer, not yet taken into a batch.", "storage"),
    _g("polybot_writer_queue_capacity", "Capacity of the writer queue, rows.", "storage"),
    _g("polybot_writer_pending_rows", "Rows accepted by the writer and not yet committed or rejected.", "storage"),
    _c("polybot_writer_rows_enqueued_total", "Rows accepted by the writer.", "storage"),
    _c("polybot_writer_rows_written_total", "Rows committed to the database.", "storage"),
    _c("polybot_writer_rows_rejected_total", "Rows the database refused for good (counted and logged).", "storage"),
    _c("polybot_writer_queue_full_total", "Rows refused because the writer queue was full.", "storage"),
    _c("polybot_pipeline_rows_refused_total", "Feed rows the pipeline could not queue (writer full).", "storage"),
    _c("polybot_writer_batches_total", "Committed writer transactions.", "storage"),
    _c("polybot_writer_errors_total", "Failed writer attempts (each retried or isolated).", "storage"),
    _c("polybot_writer_retries_total", "Writer batches retried after a transient failure.", "storage"),
    _g("polybot_writer_last_batch_rows", "Rows in the last committed batch.", "storage"),
    _g("polybot_writer_last_commit_duration_seconds", "Duration of the last committing transaction.", "storage"),
    _h("polybot_writer_batch_rows", "Rows per committed writer batch.", "storage", BATCH_BUCKETS),
    _h(
        "polybot_writer_receive_to_commit_seconds",
        "From a row's receive time until the transaction holding it committed.",
        "storage",
        COMMIT_BUCKETS,
    ),
    # ---- strategies
    _g("polybot_strategy_runners", "Strategy runners registered, by strategy.", "strategies", "strategy"),
    _c(
        "polybot_strategy_evaluations_total",
        "Strategy evaluations (one per book change a runner looked at), by strategy.",
        "strategies",
        "strategy",
    ),
    _c(
        "polybot_strategy_opportunities_total",
        "Opportunities seen (Dutch: distinct opportunities; spread: quote decisions), by strategy.",
        "strategies",
        "strategy",
    ),
    _c(
        "polybot_strategy_opportunities_taken_total",
        "Opportunities handed to the execution engine and accepted, by strategy.",
        "strategies",
        "strategy",
    ),
    _c(
        "polybot_strategy_opportunities_missed_total",
        "Opportunities not taken, by strategy and reason.",
        "strategies",
        "strategy",
        "reason",
    ),
    _c("polybot_dutch_groups_sent_total", "Dutch groups sent to the venue (past the risk gate).", "strategies"),
    _c(
        "polybot_dutch_groups_ended_total",
        "Dutch groups by how they first ended: completed, one_legged (some legs filled), failed (none filled).",
        "strategies",
        "outcome",
    ),
    _c(
        "polybot_dutch_groups_one_legged_total",
        "One-legged Dutch groups by cause: venue_rejected, book_moved, latency_budget_exceeded.",
        "strategies",
        "cause",
    ),
    _c(
        "polybot_dutch_groups_balanced_total",
        "One-legged Dutch groups balanced again by their policy (unwind, hedge).",
        "strategies",
        "policy",
    ),
    _g("polybot_dutch_groups_unbalanced", "One-legged Dutch groups not balanced (yet).", "strategies"),
    _g(
        "polybot_dutch_edge_pusd",
        "Edge of the Dutch groups sent since start: expected (the strategy's, at decision) and realised (booked).",
        "strategies",
        "kind",
    ),
    _c(
        "polybot_quoter_decisions_total",
        "Spread quoter decisions, by action (quote, keep, pull, idle).",
        "strategies",
        "action",
    ),
    # ---- execution
    _c(
        "polybot_orders_total", "Order state changes published by the engine, by status entered.", "execution", "status"
    ),
    _g("polybot_open_orders", "Orders open (live, partially filled or outcome unknown).", "execution"),
    _c("polybot_fills_total", "Fills of our orders, by side.", "execution", "side"),
    _c("polybot_fill_notional_pusd_total", "Notional of our fills (price x size), by side.", "execution", "side"),
    _c("polybot_fill_fees_pusd_total", "Fees paid on our fills.", "execution"),
    _h(
        "polybot_relayer_request_duration_seconds",
        "Relayer call latency (place, cancel, cancel_all, lookup, reconcile), by action.",
        "execution",
        RELAYER_BUCKETS,
        "action",
    ),
    _c("polybot_relayer_requests_total", "Relayer calls, by action and outcome.", "execution", "action", "outcome"),
    _c(
        "polybot_relayer_errors_total",
        "Relayer calls that failed, by action and error class (400, 425, 429, 5xx, timeout, unknown-outcome, network).",
        "execution",
        "action",
        "error_class",
    ),
    _g("polybot_positions_open", "Tokens with a non-zero position.", "execution"),
    _g("polybot_exposure_pusd", "Worst-case exposure the risk gate sees (positions and open buys).", "execution"),
    _g("polybot_realised_pnl_pusd", "Realised PnL since the positions were first built.", "execution"),
    _g(
        "polybot_realised_pnl_today_pusd",
        "Realised PnL of the current UTC day (the daily loss limit's input).",
        "execution",
    ),
    _g(
        "polybot_unrealised_pnl_pusd",
        "Unrealised PnL of open positions outside complete sets, against their marks.",
        "execution",
    ),
    _g("polybot_complete_sets", "Complete sets held (each pays 1 pUSD at settlement).", "execution"),
    _g(
        "polybot_locked_edge_pusd",
        "Complete sets x 1 pUSD minus what those sets cost (fees included).",
        "execution",
    ),
    _g("polybot_trading_mode", "1 for the execution mode in use (paper, dry_run, live).", "execution", "mode"),
    # ---- risk
    _g("polybot_armed", "1 when trading is armed, 0 when disarmed.", "risk"),
    _c("polybot_risk_refusals_total", "Intents refused by the risk gate, by reason code.", "risk", "reason"),
    _g("polybot_risk_limit_pusd", "Configured risk limits, by limit.", "risk", "limit"),
    _g("polybot_risk_breaker_recent_errors", "Order errors inside the error-rate breaker's window.", "risk"),
    _c("polybot_risk_state_changes_total", "Arm / disarm transitions, by state entered.", "risk", "state"),
    # ---- bot and control
    _c(
        "polybot_commands_total",
        "Control commands (Telegram, CLI), by front end, command and result.",
        "bot",
        "front_end",
        "command",
        "result",
    ),
    _c("polybot_alerts_total", "Alerts raised, by kind and severity.", "bot", "kind", "severity"),
    _g("polybot_alerts_active", "Alerts raised and not yet cleared, by kind.", "bot", "kind"),
    _g(
        "polybot_instance_info",
        "Always 1: who this process is (role: service, feed-worker, recorder; identity: metrics.instance).",
        "bot",
        "role",
        "identity",
    ),
    _c("polybot_events_published_total", "Events published on the internal event bus.", "bot"),
    _c("polybot_event_handler_errors_total", "Event bus handlers that raised (counted, not fatal).", "bot"),
    _c(
        "polybot_metrics_collect_errors_total",
        "Components that failed to report during a scrape (logged), by component.",
        "bot",
        "component",
    ),
    _c(
        "polybot_metrics_collect_timeouts_total",
        "Scrapes served from the previous snapshot because the event loop did not answer in time.",
        "bot",
    ),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG}

SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def exported_sample_names() -> set[str]:
    """Every sample name the catalog produces (histograms as _bucket/_sum/_count)."""
    return {spec.name + suffix for spec in CATALOG for suffix in SUFFIXES[spec.kind]}


def section_title(section: str) -> str:
    return dict(SECTIONS)[section]
