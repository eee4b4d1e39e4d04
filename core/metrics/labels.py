"""Label values that stay safe and bounded: Prometheus keeps one series per distinct value."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.:-]+")


def label_value(text: object, max_len: int = 48) -> str:
    """A short, safe label value: anything odd becomes ``_``, empty becomes ``unknown``."""
    value = _LABEL_CHARS.sub("_", str(text).strip())[:max_len].strip("_")
    return value or "unknown"


class BoundedLabels:
    """Keeps a label's cardinality bounded: after ``limit`` distinct values, new ones read ``other``."""

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self.limit = limit
        self._seen: set[str] = set(known)
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= self.limit:
                return "other"
            self._seen.add(value)
        return value
