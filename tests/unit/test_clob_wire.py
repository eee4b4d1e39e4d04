"""aiohttp's transport errors classified as httpx's are (clob_http.classify_transport): nothing sent -> RETRYABLE."""

from __future__ import annotations

import aiohttp
import pytest

from core.execution.relayers.clob_wire import classify_aiohttp, decode
from core.execution.types import ErrorClass, Outcome


@pytest.mark.parametrize(
    ("exc", "outcome", "error_class"),
    [
        (aiohttp.ConnectionTimeoutError("slow connect"), Outcome.RETRYABLE, ErrorClass.TIMEOUT),
        (aiohttp.SocketTimeoutError("no answer"), Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME),
        (TimeoutError(), Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME),
        (aiohttp.ServerDisconnectedError(), Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME),
        (aiohttp.ClientPayloadError("cut"), Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME),
    ],
)
def test_transport_errors_map_to_the_contract(exc: BaseException, outcome: Outcome, error_class: ErrorClass) -> None:
    err = classify_aiohttp(exc)
    assert (err.outcome, err.error_class) == (outcome, error_class)


def test_decode_json_text_and_empty() -> None:
    assert decode(b'[{"a": 1}]') == [{"a": 1}]
    assert decode(b"not json") == "not json"
    assert decode(b"") is None
