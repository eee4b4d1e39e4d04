"""Exceptions that carry the CLI exit code and a one-line message for the user."""

from __future__ import annotations


class PolybotError(Exception):
    """A failure the user should see as one readable line (exit code 1)."""

    exit_code = 1


class UsageError(PolybotError):
    """Bad arguments or bad configuration (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration is invalid; ``problems`` lists every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))
