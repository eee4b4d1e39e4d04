"""The order the suite runs in under xdist: slow tests first, spread over the workers.

xdist's worksteal scheduler hands each worker one contiguous share of the collection (sizes
``len(pending) // workers_left``), and a worker that runs dry later takes the tail half of the
busiest one's queue. A minute-long test near the end of a share starts late and the whole run
waits for it; at the head of a share it runs from the first second while the short tests around
it are shared out. So the slow tests are dealt to the shares longest first, each to the share with
the least expected time so far, and put at the heads of the shares; the other tests keep their
order. The order is a pure function of the collection: every worker computes the same one, as
xdist requires.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

SLOW_DEFAULT_S = 10.0
"""What a test marked ``slow`` without ``seconds=`` is expected to take."""


def slow_first(items: Sequence[T], workers: int, seconds: Callable[[T], float | None]) -> list[T]:
    """``items`` reordered for ``workers`` workers; ``seconds(item)`` is None for a test not slow."""
    slow = [(i, item, s) for i, item in enumerate(items) if (s := seconds(item)) is not None]
    if workers < 2 or not slow:
        return list(items)
    heads: list[list[T]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for _, item, s in sorted(slow, key=lambda entry: (-entry[2], entry[0])):
        k = load.index(min(load))
        heads[k].append(item)
        load[k] += s
    slow_at = {i for i, _, _ in slow}
    rest = iter([item for i, item in enumerate(items) if i not in slow_at])
    ordered: list[T] = []
    overflow: list[T] = []
    remaining = len(items)
    for k in range(workers):
        size = remaining // (workers - k)
        remaining -= size
        overflow += heads[k][size:]
        head = heads[k][:size]
        ordered += head + list(itertools.islice(rest, size - len(head)))
    ordered += [*rest, *overflow]
    if len(ordered) != len(items):  # pragma: no cover - guards the arithmetic above
        raise AssertionError("the slow-first order lost or doubled a test")
    return ordered
