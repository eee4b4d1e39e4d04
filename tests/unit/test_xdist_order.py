"""The suite's slow-first order under xdist (tests/xdist_order.py)."""

from __future__ import annotations

from tests.xdist_order import slow_first

SLOW = {"a": 90.0, "b": 60.0, "c": 30.0, "d": 10.0, "e": 10.0}


def _module(name: str) -> str:
    """Each slow test in a module of its own, except that "a2" and "a3" share "a"'s."""
    return name[0] if name[0] in "abcde" else name


def _shares(order: list[str], workers: int) -> list[list[str]]:
    """The contiguous shares xdist's worksteal scheduler cuts from a collection."""
    shares, start, remaining = [], 0, len(order)
    for k in range(workers):
        size = remaining // (workers - k)
        shares.append(order[start : start + size])
        start, remaining = start + size, remaining - size
    return shares


def test_slow_modules_head_the_shares_longest_first_and_the_rest_keep_their_order() -> None:
    items = [f"t{i}" for i in range(20)] + ["d", "a2", "a", "e", "b", "c", "a3"] + [f"u{i}" for i in range(15)]
    order = slow_first(items, 4, SLOW.get, _module)
    assert sorted(order) == sorted(items)
    shares = _shares(order, 4)
    assert shares[0][:3] == ["a2", "a", "a3"]  # a's module whole, in its order (one build of its fixtures)
    assert [share[0] for share in shares[1:]] == ["b", "c", "d"]
    assert shares[3][1] == "e"  # the least loaded share after the first four (d: 10 s)
    fast = [item for item in order if _module(item) not in SLOW]
    assert fast == [item for item in items if _module(item) not in SLOW]


def test_without_workers_or_slow_tests_nothing_moves() -> None:
    items = ["x", "a", "y"]
    assert slow_first(items, 0, SLOW.get, _module) == items
    assert slow_first(items, 1, SLOW.get, _module) == items
    assert slow_first(["x", "y", "z"], 4, SLOW.get, _module) == ["x", "y", "z"]


def test_more_slow_tests_than_a_share_holds_are_all_kept() -> None:
    items = ["a", "b", "c", "d", "e", "x"]
    order = slow_first(items, 4, SLOW.get, _module)
    assert sorted(order) == sorted(items)
