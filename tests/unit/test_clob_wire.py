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


def test_l2_headers_equal_the_official_clients() -> None:
    """L2Auth gives create_level_2_headers' headers for the same timestamp: bodies with and without
    quotes (the official client signs them with ' as "), none, and an empty one."""
    import random

    from py_clob_client_v2.clob_types import ApiCreds, RequestArgs
    from py_clob_client_v2.headers.headers import create_level_2_headers
    from py_clob_client_v2.signer import Signer

    from core.execution.relayers.clob_http import L2Auth

    signer = Signer("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80", 137)
    creds = ApiCreds("key-1", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=", "pass-1")
    auth = L2Auth(signer.address(), creds)
    rng = random.Random(3)
    bodies: list[str | None] = [None, "", '[{"a":1}]', "{'quoted':'x'}", '{"owner":"é\\u001f"}']
    bodies += ["".join(chr(rng.randrange(32, 0x2000)) for _ in range(rng.randrange(1, 40))) for _ in range(50)]
    for body in bodies:
        for method, path in (("POST", "/orders"), ("DELETE", "/order"), ("GET", "/data/orders")):
            ts = rng.randrange(1_700_000_000, 1_900_000_000)
            args = RequestArgs(method=method, request_path=path, body=None, serialized_body=body)
            want = {k: str(v) for k, v in create_level_2_headers(signer, creds, args, timestamp=ts).items()}
            assert auth.headers(method, path, body, ts) == want
    assert "c2Vj" not in repr(auth)
