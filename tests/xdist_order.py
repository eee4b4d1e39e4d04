"""The order the suite runs in under xdist: slow tests first, spread over the workers.

xdist's worksteal scheduler hands each worker one contiguous share of the collection (sizes
``len(pending) // workers_left``), and a worker that runs dry later takes the tail half of the
busiest one's queue. A minute-long test near the end of a share starts late and the whole run
waits for it; at the head of a share it runs from the first second while the short tests around
it are shared out. So every module holding a slow test moves, whole and in its own order (its
module-scoped fixtures are then built once, on one worker), to the head of a share: modules are
dealt longest first (the sum of their slow tests' seconds), each to the share with the least
expected time so far. The other tests keep their order. The order is a pure function of the
collection: every worker computes the same one, as xdist requires.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")

SLOW_DEFAULT_S = 10.0
"""What a test marked ``slow`` without ``seconds=`` is expected to take."""


def slow_first(
    items: Sequence[T], workers: int, seconds: Callable[[T], float | None], module: Callable[[T], Hashable]
) -> list[T]:
    """``items`` reordered for ``workers`` workers; ``seconds(item)`` is None for a test not slow,
    ``module(item)`` names the group that moves together (its module)."""
    weight: dict[Hashable, float] = {}
    for item in items:
        if (s := seconds(item)) is not None:
            weight[module(item)] = weight.get(module(item), 0.0) + s
    if workers < 2 or not weight:
        return list(items)
    members: dict[Hashable, list[T]] = {}
    for item in items:
        if module(item) in weight:
            members.setdefault(module(item), []).append(item)
    first_seen = {key: i for i, key in enumerate(members)}
    heads: list[list[T]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for key in sorted(members, key=lambda k: (-weight[k], first_seen[k])):
        k = load.index(min(load))
        heads[k] += members[key]
        load[k] += weight[key]
    rest = iter([item for item in items if module(item) not in weight])
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
