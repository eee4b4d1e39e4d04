"""What only the running service knows is wrong, added to /health's reasons: storage refusing
rows (a full writer queue, feed rows that could not be queued) and supervised components down."""

from __future__ import annotations

from core.app.lifecycle import Lifecycle
from core.feed.pipeline import IngestPipeline
from core.store.writer import BatchedWriter
from core.supervise import Supervisor


class ServiceProblems:
    def __init__(
        self, writer: BatchedWriter, pipeline: IngestPipeline, supervisor: Supervisor, lifecycle: Lifecycle
    ) -> None:
        self._writer = writer
        self._pipeline = pipeline
        self._supervisor = supervisor
        self._lifecycle = lifecycle

    def reasons(self) -> list[str]:
        out = []
        full = self._writer.stats.queue_full_count
        if full:
            out.append(f"writer queue was full {full} time(s)")
        refused = self._pipeline.stats.rows_refused
        if refused:
            out.append(f"{refused} feed row(s) could not be queued for storage")
        if not self._lifecycle.stopping:  # while stopping, a component that ended is not down
            for name, comp in self._supervisor.components.items():
                if not comp.running:
                    out.append(f"component {name} is down ({comp.last_error or 'stopped'})")
        return out
