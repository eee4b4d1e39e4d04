"""Logging setup (placeholder level handling; the settings work extends this)."""

from __future__ import annotations

import logging


def setup_cli_logging(verbosity: int = 0) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
