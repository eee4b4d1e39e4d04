"""The batched writer's counters and log helpers (:mod:`core.store.writer`)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from sqlalchemy.exc import StatementError

log = logging.getLogger("core.store.writer")


class BoundedLog:
    """Log the first event at once, then at most one summary line per ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")
        self._suppressed = 0

    def __call__(self, level: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            extra = f" ({self._suppressed} similar suppressed)" if self._suppressed else ""
            log.log(level, msg + extra, *args)
            self._last = now
            self._suppressed = 0
        else:
            self._suppressed += 1


@dataclass(frozen=True, slots=True)
class WriterStats:
    enqueued: int  # rows accepted by put()
    written: int  # rows committed
    rejected: int  # rows refused by the database for good (counted and logged)
    pending: int  # accepted, not yet committed or rejected (queued + in flight)
    batches: int  # committed transactions
    max_batch: int  # largest committed batch, rows
    last_batch: int  # rows in the last committed batch
    queue_full_count: int  # put() calls refused because the queue was full
    errors: int  # failed attempts (each retried or isolated)
    retries: int  # transient failures retried
    last_commit_latency_s: float  # duration of the last committing transaction
    latency_samples: int  # rows in the receive->commit latency window
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None

    def as_dict(self) -> dict[str, int | float | None]:
        return asdict(self)


def one_line(exc: BaseException | None) -> str:
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    text = str(cause).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def pct_ms(sorted_ns: list[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    idx = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[idx] / 1e6
