"""``[db.retention]``: how long the feed tables keep their rows, and how the prune job runs.

Windows are whole days counted back from now on ``receive_ts`` (our clock at receipt); ``0`` keeps
a table's rows forever. The job deletes in batches of ``batch_rows``, one short transaction each,
pausing ``pause_ms`` between them, so the batched writer's commits are never held up for long.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from core.settings.fields import CrossFieldProblems, Int, Section

MAX_DAYS = 3650


class RetentionSettings(Section):
    enabled: bool = True
    """Run the prune job inside the service (``polybot prune`` works either way)."""
    interval_minutes: Int = Field(60, ge=1, le=24 * 60)
    batch_rows: Int = Field(5_000, ge=100, le=100_000)
    pause_ms: Int = Field(20, ge=0, le=10_000)
    partitions_ahead_days: Int = Field(3, ge=1, le=60)
    """PostgreSQL: day partitions kept created ahead of today (a DEFAULT partition catches the rest)."""
    book_deltas_days: Int = Field(7, ge=0, le=MAX_DAYS)
    trades_days: Int = Field(90, ge=0, le=MAX_DAYS)
    book_snapshots_days: Int = Field(7, ge=0, le=MAX_DAYS)
    """Raw window of book_snapshots: every snapshot younger than this is kept."""
    book_snapshots_every_minutes: Int = Field(5, ge=0, le=24 * 60)
    """Beyond the raw window keep one snapshot per asset per this many minutes (0: none)."""
    book_snapshots_thinned_days: Int = Field(90, ge=0, le=MAX_DAYS)
    """How long the thinned snapshots are kept (0: forever)."""

    @model_validator(mode="after")
    def _consistent(self) -> RetentionSettings:
        items: list[tuple[str, str, tuple[str, ...]]] = []
        raw, thinned = self.book_snapshots_days, self.book_snapshots_thinned_days
        if self.book_snapshots_every_minutes and raw and thinned and thinned <= raw:
            items.append(
                (
                    "book_snapshots_thinned_days",
                    "must be 0 (forever) or more than book_snapshots_days",
                    ("book_snapshots_days",),
                )
            )
        if items:
            raise CrossFieldProblems(items)
        return self

    def days_of(self, table: str) -> int:
        """The raw window of a feed table, days (0: forever)."""
        days: int = getattr(self, f"{table}_days")
        return days
