"""Tell the trader at once when the venue cannot be reached, and once when it can again.

The CLOB relayer records every REST call and its user channel's state (:mod:`core.execution.venue_link`);
this policy, run by the staleness job (:mod:`core.app.jobs`), turns a run of ``after_failures`` consecutive REST
failures — or a user channel down for as long as that many heartbeats — into ONE ``venue_unreachable``
alert (critical: orders may be resting, and the venue cancels them all when heartbeats stop), and
the end of it into ONE recovery whose duration counts from the first failure, not from the alert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from core.events import Alert, AlertCleared, EventBus, Severity
from core.execution.venue_link import VenueStatus

KIND = "venue_unreachable"
KEY = "clob"


class VenueWatch:
    def __init__(
        self,
        bus: EventBus,
        *,
        after_failures: int,
        heartbeat_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.after_failures = after_failures
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.down_since: float | None = None  # set while the alert is active

    @property
    def alerted(self) -> bool:
        return self.down_since is not None

    def problems(self, st: VenueStatus) -> list[str]:
        out = []
        if st.rest_failures >= self.after_failures:
            out.append(f"{st.rest_failures} REST calls failed in a row (last: {st.rest_error or 'no answer'})")
        user_down = st.user_down_since
        if st.user_channel == "disconnected" and user_down is not None:
            if self.clock() - user_down >= self.after_failures * self.heartbeat_s:
                out.append(f"user channel disconnected for {int(self.clock() - user_down)}s")
        return out

    def check(self, st: VenueStatus, resting_orders: int) -> None:
        problems = self.problems(st)
        if problems and self.down_since is None:
            self.down_since = st.down_since() or self.clock()
            since = datetime.fromtimestamp(self.down_since, UTC).strftime("%H:%M:%S UTC")
            orders = (
                f"; {resting_orders} order(s) resting: the venue cancels them if heartbeats stay down ~10s"
                if resting_orders
                else ""
            )
            self.bus.publish(
                Alert(
                    kind=KIND,
                    severity=Severity.CRITICAL,
                    key=KEY,
                    message=f"Polymarket CLOB unreachable since {since}: {'; '.join(problems)}{orders}",
                )
            )
        elif self.down_since is not None and st.rest_ok and st.user_channel != "disconnected":
            lasted = max(0.0, self.clock() - self.down_since)
            self.down_since = None
            self.bus.publish(
                AlertCleared(kind=KIND, key=KEY, message="Polymarket CLOB reachable again", duration_s=lasted)
            )
