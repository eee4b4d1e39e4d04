"""What "healthy" means: one pure definition, fed by either transport.

The running service feeds it what it sees in memory (feed connections, each live book's status,
the alerts still open on its bus, its own extras: writer backlog, components down); a CLI process
feeds it what the service left in the database (the schema, each stored book's last update and
whether it is crossed, the alerts still open in the ``alerts`` table). Both get the same
:class:`~core.control.types.HealthReport`, built here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.control.types import FeedConnection, HealthReport
from core.types import BookStatus

EVENT_ALERT_KINDS = frozenset({"order_rejected", "order_failed", "kill_switch", "service", "daily_summary"})
"""Alerts that report something that happened, not a condition that is still true: health ignores them."""
STANDING_SEVERITIES = ("warning", "critical")
"""An info alert is a notice; only these severities can make the bot unhealthy."""
LIVE_CONNECTION_STATES = frozenset({"connected", "reconnected"})
UNHEALTHY_BOOK_STATES = (BookStatus.INCONSISTENT, BookStatus.STALE, BookStatus.AWAITING_SNAPSHOT)
"""In the order /health lists them: the worst first."""


def is_standing(kind: str, severity: str) -> bool:
    """An open alert that describes a condition still true (not a notice, not a one-off event)."""
    return severity in STANDING_SEVERITIES and kind not in EVENT_ALERT_KINDS


@dataclass(frozen=True, slots=True)
class OpenAlert:
    kind: str
    key: str
    severity: str
    message: str


@dataclass(frozen=True, slots=True)
class StoredBook:
    """One book as the database last saw it."""

    age_s: float | None
    """Seconds since its last stored update (None: never updated)."""
    crossed: bool
    closed: bool = False
    """Its market is closed/resolved: no update is expected, so its age is no fault."""


@dataclass(frozen=True)
class StoredFeed:
    """The feed as a CLI process reads it from the database."""

    schema_empty: bool
    schema_at_head: bool
    books: Sequence[StoredBook] = ()
    staleness_ms: int = 60_000
    """A stored book whose last update is older than this is stale."""


@dataclass(frozen=True)
class HealthInputs:
    connections: Sequence[FeedConnection] = ()
    book_states: Mapping[BookStatus, int] = field(default_factory=dict)
    """Live books counted by status (the running service)."""
    stored: StoredFeed | None = None
    """The database's view (a CLI process); None in the running service."""
    alerts: Sequence[OpenAlert] = ()
    extras: Sequence[str] = ()
    """Reasons only the running service can know (writer backlog, a component down)."""


def assess(inputs: HealthInputs) -> HealthReport:
    reasons: list[str] = []
    if inputs.stored is not None:
        schema = _schema_problem(inputs.stored)
        if schema is not None:  # nothing else in that database can be read as ours
            return HealthReport(ok=False, reasons=[schema])
        reasons += _stored_book_problems(inputs.stored)
    reasons += [
        f"feed connection {c.name} is {c.state}" for c in inputs.connections if c.state not in LIVE_CONNECTION_STATES
    ]
    for status in UNHEALTHY_BOOK_STATES:
        count = inputs.book_states.get(status, 0)
        if count:
            reasons.append(f"{count} book(s) {status.value}")
    reasons += [f"open alert {a.kind}: {a.message}" for a in inputs.alerts if is_standing(a.kind, a.severity)]
    reasons += inputs.extras
    return HealthReport(ok=not reasons, reasons=reasons)


def _schema_problem(stored: StoredFeed) -> str | None:
    if stored.schema_empty:
        return "database has no schema (run polybot migrate --apply)"
    if not stored.schema_at_head:
        return "database schema is not at head (run polybot migrate --apply)"
    return None


def _stored_book_problems(stored: StoredFeed) -> list[str]:
    books = stored.books
    if not books:
        return ["no asset tracked yet (nothing ingested)"]
    out: list[str] = []
    limit_s = stored.staleness_ms / 1000
    stale = sum(1 for b in books if not b.closed and (b.age_s is None or b.age_s > limit_s))
    if stale:
        out.append(f"{stale} of {len(books)} asset(s) not updated within {stored.staleness_ms} ms")
    crossed = sum(1 for b in books if b.crossed)
    if crossed:
        out.append(f"{crossed} stored book(s) crossed")
    return out
