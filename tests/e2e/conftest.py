"""Fixtures shared by the end-to-end tests (the CLI and the bot as a user runs them).

- ``clean_env``: this process's environment without any ``POLYBOT_*`` variable, for a CLI
  subprocess: a developer's own settings must not change what a test runs.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
