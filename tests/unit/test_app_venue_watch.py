"""The venue's reachability: a run of failed REST calls, or a user channel down for as long as that
many heartbeats, is ONE critical alert (naming resting orders); its end is ONE recovery whose
duration counts from the first failure, not from the alert."""

from __future__ import annotations

from core.app.venue_watch import VenueWatch
from core.events import Alert, AlertCleared, EventBus, Recorder, Severity
from core.execution.venue_link import VenueStatus

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


class Clock:
    now = T0

    def __call__(self) -> float:
        return self.now


def status(
    failures: int = 0, since: float | None = None, user: str = "connected", user_since: float | None = None
) -> VenueStatus:
    return VenueStatus(failures, since, "ReadTimeout" if failures else "", user, user_since, 1.0)


def watch(bus: EventBus, clock: Clock) -> VenueWatch:
    return VenueWatch(bus, after_failures=3, heartbeat_s=5.0, clock=clock)


def test_failed_rest_calls_are_one_alert_and_the_recovery_counts_from_the_first_failure() -> None:
    bus, clock = EventBus(), Clock()
    rec = Recorder(bus)
    w = watch(bus, clock)
    w.check(status(2, T0), resting_orders=0)  # two in a row: not yet
    clock.now = T0 + 10
    w.check(status(3, T0), resting_orders=2)
    w.check(status(5, T0), resting_orders=2)  # still down: said once
    assert w.alerted
    clock.now = T0 + 70
    w.check(status(), resting_orders=2)
    alerts, cleared = rec.of(Alert), rec.of(AlertCleared)
    assert [(a.kind, a.key, a.severity) for a in alerts] == [("venue_unreachable", "clob", Severity.CRITICAL)]
    assert alerts[0].message == (
        "Polymarket CLOB unreachable since 22:13:20 UTC: 3 REST calls failed in a row (last: ReadTimeout); "
        "2 order(s) resting: the venue cancels them if heartbeats stay down ~10s"
    )
    assert [(c.kind, c.key, c.duration_s) for c in cleared] == [("venue_unreachable", "clob", 70.0)]
    assert not w.alerted


def test_a_user_channel_down_for_as_many_heartbeats_is_an_alert_and_not_before() -> None:
    bus, clock = EventBus(), Clock()
    rec = Recorder(bus, Alert)
    w = watch(bus, clock)
    clock.now = T0 + 14  # 3 heartbeats of 5 s = 15 s
    w.check(status(user="disconnected", user_since=T0), resting_orders=0)
    assert rec.of(Alert) == []
    clock.now = T0 + 15
    w.check(status(user="disconnected", user_since=T0), resting_orders=0)
    assert [a.message for a in rec.of(Alert)] == [
        "Polymarket CLOB unreachable since 22:13:20 UTC: user channel disconnected for 15s"
    ]


def test_no_recovery_while_the_user_channel_is_still_down() -> None:
    bus, clock = EventBus(), Clock()
    rec = Recorder(bus, AlertCleared)
    w = watch(bus, clock)
    w.check(status(4, T0), resting_orders=0)
    w.check(status(0, None, user="disconnected", user_since=T0 + 1), resting_orders=0)
    assert rec.of(AlertCleared) == [] and w.alerted
