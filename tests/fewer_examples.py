"""A pytest plugin (``-p tests.fewer_examples``): every Hypothesis test runs a quarter of its examples.

For the feed tests' second run on the pure-Python path (tests/unit/test_feed_kernel.py): the
compiled path has just run them at full strength, and the second run asks whether the source
modules, the same code, behave the same; a quarter of the examples (at least 25) still draws from
every strategy, at a quarter of the second run's CPU.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

SHARE = 4
FLOOR = 25


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        test = getattr(item, "obj", None)
        current = getattr(test, "_hypothesis_internal_use_settings", None)
        if isinstance(current, settings):
            # Hypothesis reads this attribute each time the test is called
            fewer = max(FLOOR, current.max_examples // SHARE)
            test._hypothesis_internal_use_settings = settings(current, max_examples=fewer)  # type: ignore[union-attr]
