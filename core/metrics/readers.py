"""Scrape-time reading: each live component's figures into one scrape's families.

One function per component, given the component (typed by :mod:`core.metrics.sources`) and,
where values were captured as they happened, its tap. They run on the event loop that owns the
components (see :class:`core.metrics.collect.Metrics`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.events import AlertKind
from core.execution.group_stats import Cause, GroupFigures, GroupStats
from core.feed.counters import ERROR_REASONS, FAULT_KINDS
from core.metrics.families import Families
from core.metrics.labels import label_value
from core.metrics.sources import (
    BusSource,
    DecisionStats,
    EngineSource,
    EvaluationStats,
    FeedSource,
    OpportunityCounters,
    PipelineFigures,
    ProcessorSource,
    RiskSource,
    WriterSource,
)
from core.metrics.taps import WIRE_EVENT_TYPES, BusTap, FeedTap, RelayerTap, WriterTap
from core.types import BookStatus

CONNECTION_STATES = ("connecting", "connected", "dead", "closed")
QUOTER_ACTIONS = ("quote", "keep", "pull", "idle")


def read_processor(f: Families, p: ProcessorSource, now: int, top_assets: int) -> None:
    f.add("polybot_ws_frames_total", (), p.frames)
    errors = p.counters.as_dict()
    for reason in dict.fromkeys((*ERROR_REASONS, *errors)):
        f.add("polybot_feed_input_errors_total", (label_value(reason),), errors.get(reason, 0))
    faults = p.faults.as_dict()
    for kind in dict.fromkeys((*FAULT_KINDS, *faults)):
        f.add("polybot_book_integrity_faults_total", (label_value(kind),), faults.get(kind, 0))
    for status, n in p.status_counts().items():
        f.add("polybot_books", (status.value,), n)
    f.add("polybot_feed_hook_failures_total", (), p.hook_failures)
    f.add("polybot_feed_late_frames_total", (), p.late_frames.count)
    ages: list[tuple[int, str]] = []
    for book in list(p.books.values()):
        if book.seeded and book.last_update_ns and book.raw_status in (BookStatus.OK, BookStatus.STALE):
            ages.append((now - book.last_update_ns, book.asset_id))
    if ages:
        f.add("polybot_book_staleness_max_seconds", (), max(0, max(ages)[0]) / 1e9)
        for age, asset in sorted(ages, reverse=True)[:top_assets]:
            f.add("polybot_book_age_seconds", (asset,), max(0, age) / 1e9)


def read_feed_tap(f: Families, tap: FeedTap) -> None:
    for kind, n in tap.event_counts().items():
        f.add("polybot_ws_events_total", (WIRE_EVENT_TYPES.get(kind, "other"),), n)
    for status, n in tap.status_changes.items():
        f.add("polybot_book_status_changes_total", (status,), n)
    f.hist("polybot_feed_receive_to_apply_seconds", (), tap.apply)
    f.add("polybot_latency_samples_skipped_total", ("apply",), tap.skipped)


def read_pipeline(f: Families, st: PipelineFigures) -> None:
    f.add("polybot_pipeline_sink_errors_total", (), st.sink_errors)
    f.add("polybot_pipeline_reconnect_resets_total", (), st.reconnect_resets)
    f.add("polybot_pipeline_rows_refused_total", (), st.rows_refused)


def read_feed(f: Families, feed: FeedSource, now: int) -> None:
    st = feed.stats()
    for c in st.connections:
        conn = str(c.conn_id)
        state = str(c.state)
        for name in dict.fromkeys((*CONNECTION_STATES, state)):
            f.add("polybot_ws_connection_state", (conn, name), 1.0 if name == state else 0.0)
        f.add("polybot_ws_connection_assets", (conn,), c.asset_count)
        f.add("polybot_ws_reconnects_total", (conn,), c.reconnects)
        f.add("polybot_ws_disconnects_total", (conn,), c.dead_count)
        f.add("polybot_ws_connection_frames_total", (conn,), c.frames)
        f.add("polybot_ws_received_bytes_total", (conn,), c.bytes)
        f.add("polybot_ws_pongs_total", (conn,), c.pongs)
        if c.last_frame_ns is not None:
            f.add("polybot_ws_last_frame_age_seconds", (conn,), max(0, now - c.last_frame_ns) / 1e9)
    for reason in dict.fromkeys(("oversized", "oversized_disconnect", "binary_not_utf8", *st.dropped)):
        f.add("polybot_ws_dropped_frames_total", (label_value(reason),), st.dropped.get(reason, 0))
    f.add("polybot_ws_callback_errors_total", (), st.callback_errors)


def read_writer_tap(f: Families, tap: WriterTap) -> None:
    f.hist("polybot_writer_batch_rows", (), tap.batch)
    f.hist("polybot_writer_receive_to_commit_seconds", (), tap.commit)
    f.add("polybot_latency_samples_skipped_total", ("commit",), tap.skipped)


def read_writer(f: Families, w: WriterSource) -> None:
    st = w.stats
    f.add("polybot_writer_queue_depth", (), w.queued)
    f.add("polybot_writer_queue_capacity", (), w.max_queue)
    f.add("polybot_writer_pending_rows", (), st.pending)
    f.add("polybot_writer_rows_enqueued_total", (), st.enqueued)
    f.add("polybot_writer_rows_written_total", (), st.written)
    f.add("polybot_writer_rows_rejected_total", (), st.rejected)
    f.add("polybot_writer_queue_full_total", (), st.queue_full_count)
    f.add("polybot_writer_batches_total", (), st.batches)
    f.add("polybot_writer_errors_total", (), st.errors)
    f.add("polybot_writer_retries_total", (), st.retries)
    f.add("polybot_writer_last_batch_rows", (), st.last_batch)
    f.add("polybot_writer_last_commit_duration_seconds", (), st.last_commit_latency_s)


def read_strategies(
    f: Families, runner_stats: Iterable[tuple[str, object]], opportunities: Mapping[str, OpportunityCounters]
) -> None:
    """``runner_stats``: (strategy, stats) of every runner seen; ``opportunities``: by strategy."""
    runners: dict[str, int] = {}
    evaluations: dict[str, int] = {}
    seen: dict[str, int] = {}
    actions = dict.fromkeys(QUOTER_ACTIONS, 0)
    quoters = False
    for strategy, stats in runner_stats:
        runners[strategy] = runners.get(strategy, 0) + 1
        if isinstance(stats, EvaluationStats):
            evaluations[strategy] = evaluations.get(strategy, 0) + stats.evaluations
            seen[strategy] = seen.get(strategy, 0) + stats.opportunities
        elif isinstance(stats, DecisionStats):
            quoters = True
            evaluations[strategy] = evaluations.get(strategy, 0) + stats.decisions
            seen[strategy] = seen.get(strategy, 0) + stats.quotes
            for action, n in zip(QUOTER_ACTIONS, (stats.quotes, stats.keeps, stats.pulls, stats.idle), strict=True):
                actions[action] += n
    for strategy, counters in opportunities.items():
        strategy = label_value(strategy)
        seen.setdefault(strategy, counters.opportunities)
        f.add("polybot_strategy_opportunities_taken_total", (strategy,), counters.groups_submitted)
        for reason, n in sorted(dict(counters.missed).items()):
            f.add("polybot_strategy_opportunities_missed_total", (strategy, label_value(reason)), n)
    for name, by_strategy in (
        ("polybot_strategy_runners", runners),
        ("polybot_strategy_evaluations_total", evaluations),
        ("polybot_strategy_opportunities_total", seen),
    ):
        for strategy, n in sorted(by_strategy.items()):
            f.add(name, (strategy,), n)
    if quoters:
        for action, n in actions.items():
            f.add("polybot_quoter_decisions_total", (action,), n)


def read_relayer_tap(f: Families, tap: RelayerTap) -> None:
    for (action, outcome), n in sorted(tap.requests.items()):
        f.add("polybot_relayer_requests_total", (action, outcome), n)
    for (action, error_class), n in sorted(tap.errors.items()):
        f.add("polybot_relayer_errors_total", (action, error_class), n)
    for action, h in sorted(tap.latency.items()):
        f.hist("polybot_relayer_request_duration_seconds", (action,), h)


def read_engine(f: Families, e: EngineSource) -> None:
    f.add("polybot_open_orders", (), len(e.open_orders()))
    f.add("polybot_positions_open", (), len(e.positions.open_positions()))
    sets = e.positions.valuation()
    f.add("polybot_complete_sets", (), float(sets.total_sets))
    f.add("polybot_locked_edge_pusd", (), float(sets.locked_edge))
    read_groups(f, e.group_stats)
    f.add("polybot_realised_pnl_pusd", (), float(e.positions.realised_total()))
    f.add("polybot_realised_pnl_today_pusd", (), float(e.positions.daily_realised()))
    f.add("polybot_unrealised_pnl_pusd", (), float(e.unrealised_pnl()))
    f.add("polybot_exposure_pusd", (), float(e.exposure().total_exposure()))
    mode = label_value(e.mode or "unknown")
    for name in dict.fromkeys(("paper", "dry_run", "live", mode)):
        f.add("polybot_trading_mode", (name,), 1.0 if name == mode else 0.0)


def read_groups(f: Families, stats: GroupStats | None) -> None:
    """Every Dutch group's figures (zero-valued series when the engine has none yet)."""
    g = stats.figures() if stats is not None else GroupFigures()
    f.add("polybot_dutch_groups_sent_total", (), g.sent)
    for outcome, n in (("completed", g.completed), ("one_legged", g.one_legged), ("failed", g.failed)):
        f.add("polybot_dutch_groups_ended_total", (outcome,), n)
    for cause in Cause:
        f.add("polybot_dutch_groups_one_legged_total", (cause.value,), g.one_legged_by_cause.get(cause.value, 0))
    f.add("polybot_dutch_groups_balanced_total", ("unwind",), g.unwound)
    f.add("polybot_dutch_groups_balanced_total", ("hedge",), g.hedged)
    f.add("polybot_dutch_groups_unbalanced", (), g.unbalanced)
    f.add("polybot_dutch_edge_pusd", ("expected",), float(g.expected_edge))
    f.add("polybot_dutch_edge_pusd", ("realised",), float(g.realised_edge))


def read_risk(f: Families, r: RiskSource) -> None:
    f.add("polybot_armed", (), 1.0 if r.armed else 0.0)
    for code, n in sorted(r.refusals.items(), key=lambda kv: str(kv[0])):
        f.add("polybot_risk_refusals_total", (label_value(code),), n)
    limits = r.limits
    for name, value in (
        ("max_order_notional", limits.max_order_notional),
        ("max_market_notional", limits.max_market_notional),
        ("max_event_notional", limits.max_event_notional),
        ("max_total_exposure", limits.max_total_exposure),
        ("daily_loss_limit", limits.daily_loss_limit),
    ):
        if value is not None:
            f.add("polybot_risk_limit_pusd", (name,), float(value))
    f.add("polybot_risk_breaker_recent_errors", (), r.breaker.recent())


def read_bus_tap(f: Families, tap: BusTap) -> None:
    for status, n in tap.orders.items():
        f.add("polybot_orders_total", (status,), n)
    for side in ("buy", "sell"):
        f.add("polybot_fills_total", (side,), tap.fills[side])
        f.add("polybot_fill_notional_pusd_total", (side,), tap.notional[side])
    f.add("polybot_fill_fees_pusd_total", (), tap.fees)
    for (kind, severity), n in sorted(tap.alerts.items()):
        f.add("polybot_alerts_total", (kind, severity), n)
    active: dict[str, int] = {k.value: 0 for k in AlertKind}
    for kind in list(tap.active.values()):
        active[kind] = active.get(kind, 0) + 1
    for kind, n in sorted(active.items()):
        f.add("polybot_alerts_active", (kind,), n)
    for state, n in tap.state_changes.items():
        f.add("polybot_risk_state_changes_total", (state,), n)


def read_bus(f: Families, bus: BusSource) -> None:
    f.add("polybot_events_published_total", (), bus.published)
    f.add("polybot_event_handler_errors_total", (), bus.handler_errors)
