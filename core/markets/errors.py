"""What can go wrong with Gamma markets: a bad item, an unreadable Gamma, an unknown market."""

from __future__ import annotations

import enum

from core.errors import PolybotError, UsageError


class BadReason(enum.StrEnum):
    """Why a Gamma item was not turned into a market (a bounded set: it is also a counter label)."""

    NOT_AN_OBJECT = "not_an_object"
    MISSING_CONDITION_ID = "missing_condition_id"
    MISSING_TOKEN_IDS = "missing_clob_token_ids"
    BAD_TOKEN_IDS = "bad_clob_token_ids"
    BAD_OUTCOMES = "bad_outcomes"
    LENGTH_MISMATCH = "outcomes_tokens_length_mismatch"
    BAD_NUMBER = "bad_number"
    BAD_FIELD = "bad_field_type"


class GammaParseError(ValueError):
    """One Gamma item cannot be traded on; ``reason`` says why in a word, ``detail`` in a sentence."""

    def __init__(self, reason: BadReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class GammaError(PolybotError):
    """Gamma could not be read (after the retries allowed); names the URL and the last failure."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class MarketLookupError(UsageError):
    """A MARKET argument names no stored market, or several."""


class RefusedReason(enum.StrEnum):
    """Why the repository did not store a parsed market (also a counter label)."""

    TOKEN_ID_CONFLICT = "token_id_conflict"
    FIELD_TOO_LONG = "field_too_long"
    NUMBER_DOES_NOT_FIT = "number_does_not_fit"
    DB_REJECTED = "db_rejected"
