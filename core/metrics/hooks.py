"""Instrumentation points for code that metrics cannot read from the outside.

The writer's receive-to-commit latencies and batch sizes exist only for the moment a batch
commits, so :mod:`core.store.writer` calls :func:`writer_committed` once per committed batch.
This module imports nothing heavy (it is imported by the writer) and costs one dictionary
lookup when no metrics object watches that writer. Observers never break the caller: an
exception is logged once per observer and swallowed.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

# parts are the writer's (Table, rows) pairs of a committed batch; rows of one part share their keys
CommittedParts = Sequence[tuple[object, Sequence[Mapping[str, object]]]]
# observer(parts, now_ns)
WriterObserver = Callable[[CommittedParts, int], None]

_writer_observers: weakref.WeakKeyDictionary[object, list[WriterObserver]] = weakref.WeakKeyDictionary()
_failed: set[int] = set()


def watch_writer(writer: object, observer: WriterObserver) -> None:
    observers = _writer_observers.setdefault(writer, [])
    if observer not in observers:
        observers.append(observer)


def unwatch_writer(writer: object, observer: WriterObserver) -> None:
    observers = _writer_observers.get(writer)
    if observers and observer in observers:
        observers.remove(observer)


def writer_committed(writer: object, parts: CommittedParts, now_ns: int) -> None:
    """Called by the writer after each commit (the batch's parts and the commit time)."""
    observers = _writer_observers.get(writer)
    if not observers:
        return
    for observer in observers:
        try:
            observer(parts, now_ns)
        except Exception:
            if id(observer) not in _failed:
                _failed.add(id(observer))
                log.exception("writer metrics observer %r failed (logged once)", observer)
