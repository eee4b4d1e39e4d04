"""V2 order signing: signer recovery, published vectors, exact amounts, validation, key secrecy."""

from __future__ import annotations

import json
import logging
import pickle
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2
from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2
from py_clob_client_v2.order_utils.model.side import Side as ClientSide
from py_clob_client_v2.order_utils.model.signature_type_v2 import SignatureTypeV2
from py_clob_client_v2.signer import Signer

from core.errors import UsageError
from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_signing import (
    TICK_SIZES,
    MarketParams,
    OrderInvalid,
    OrderSigner,
    expected_amounts,
    order_hash_of,
    struct_order_hash,
)
from core.execution.types import OrderRequest, OrderStatus, Outcome
from core.sim.mock_clob_verify import recover_order_signer
from core.types import OrderType, Side
from tests.conftest import load_shared

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
EXCHANGE = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE = "0xe2222d279d744050d28e00520010520000310F59"
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
FUNDER = "0x1111111111111111111111111111111111111111"


def _order(**kw: Any) -> OrderRequest:
    base: dict[str, Any] = {
        "client_order_id": "c-1",
        "market": "0xabc",
        "token_id": TOKEN,
        "side": Side.BUY,
        "price": Decimal("0.55"),
        "size": Decimal("10"),
    }
    base.update(kw)
    return OrderRequest(**base)


def _typed(order: dict[str, Any], exchange: str, chain_id: int = 137) -> dict[str, Any]:
    """The V2 EIP-712 message written out here, independently of the code under test."""
    return {
        "primaryType": "Order",
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": [
                {"name": "salt", "type": "uint256"},
                {"name": "maker", "type": "address"},
                {"name": "signer", "type": "address"},
                {"name": "tokenId", "type": "uint256"},
                {"name": "makerAmount", "type": "uint256"},
                {"name": "takerAmount", "type": "uint256"},
                {"name": "side", "type": "uint8"},
                {"name": "signatureType", "type": "uint8"},
                {"name": "timestamp", "type": "uint256"},
                {"name": "metadata", "type": "bytes32"},
                {"name": "builder", "type": "bytes32"},
            ],
        },
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": "2",
            "chainId": chain_id,
            "verifyingContract": exchange,
        },
        "message": {
            "salt": int(order["salt"]),
            "maker": order["maker"],
            "signer": order["signer"],
            "tokenId": int(order["tokenId"]),
            "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]),
            "side": 0 if order["side"] == "BUY" else 1,
            "signatureType": int(order["signatureType"]),
            "timestamp": int(order["timestamp"]),
            "metadata": bytes.fromhex(order["metadata"][2:]),
            "builder": bytes.fromhex(order["builder"][2:]),
        },
    }


def test_fast_ecdsa_backend_is_coincurve() -> None:
    from eth_keys.backends import get_backend

    assert type(get_backend()).__name__ == "CoinCurveECCBackend"


@pytest.mark.parametrize("neg_risk", [False, True])
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_eoa_signature_recovers_to_the_configured_key(neg_risk: bool, side: Side) -> None:
    signer = OrderSigner(KEY)
    signed = signer.sign(_order(side=side, neg_risk=neg_risk))
    order = signed.order
    exchange = NEG_RISK_EXCHANGE if neg_risk else EXCHANGE
    assert signed.exchange == exchange
    recovered = Account.recover_message(
        encode_typed_data(full_message=_typed(order, exchange)), signature=order["signature"]
    )
    assert recovered == ADDRESS == Account.from_key(KEY).address
    # Signed for one exchange, the signature does not verify for the other.
    other = EXCHANGE if neg_risk else NEG_RISK_EXCHANGE
    assert (
        Account.recover_message(encode_typed_data(full_message=_typed(order, other)), signature=order["signature"])
        != ADDRESS
    )
    assert order["maker"] == order["signer"] == ADDRESS
    assert order["tokenId"] == TOKEN
    assert order["signatureType"] == 0
    assert order["side"] == side.value
    maker, taker = (5_500_000, 10_000_000) if side is Side.BUY else (10_000_000, 5_500_000)
    assert (int(order["makerAmount"]), int(order["takerAmount"])) == (maker, taker)


def test_exact_post_body_shape() -> None:
    signed = OrderSigner(KEY).sign(_order(post_only=True), owner="api-key-uuid")
    body = signed.body
    assert list(body) == ["order", "owner", "orderType", "deferExec", "postOnly"]
    assert body["owner"] == "api-key-uuid" and body["orderType"] == "GTC" and body["postOnly"] is True
    assert body["deferExec"] is False
    assert list(body["order"]) == [
        "salt",
        "maker",
        "signer",
        "tokenId",
        "makerAmount",
        "takerAmount",
        "side",
        "expiration",
        "signatureType",
        "timestamp",
        "metadata",
        "builder",
        "signature",
    ]
    assert isinstance(body["order"]["salt"], int)
    assert json.loads(signed.serialized) == body
    assert " " not in signed.serialized


def test_order_bodies_are_written_as_json_dumps_writes_them() -> None:
    """serialize_orders (msgspec) is the text serialize_body (the official client's json.dumps) gives:
    for signed bodies, batches of them, and strings holding every character json escapes or keeps."""
    import random

    from core.execution.relayers.clob_signing import serialize_body, serialize_orders

    signer = OrderSigner(KEY)
    rng = random.Random(7)
    bodies = [
        signer.sign(OrderRequest(f"c{i}", "0xm", TOKEN, Side.BUY, Decimal("0.5"), Decimal(i + 1)), owner="o").body
        for i in range(3)
    ]
    assert serialize_orders(bodies[0]) == serialize_body(bodies[0])
    assert serialize_orders(bodies) == serialize_body(bodies)
    for _ in range(300):
        text = "".join(
            chr(rng.choice([rng.randrange(0, 0x80), rng.randrange(0x80, 0x3000), 0x2028, 0x22, 0x5C, 0x27]))
            for _ in range(rng.randrange(0, 12))
        )
        body = {**bodies[0], "owner": text, "salt": rng.randrange(0, 1 << 70), "postOnly": rng.random() < 0.5}
        assert serialize_orders(body) == serialize_body(body)


@pytest.mark.parametrize("sig_type", [1, 2])
def test_proxy_and_safe_sign_with_the_eoa_for_the_funder(sig_type: int) -> None:
    signer = OrderSigner(KEY, signature_type=sig_type, funder=FUNDER)
    order = signer.sign(_order()).order
    assert order["maker"] == FUNDER and order["signer"] == ADDRESS and order["signatureType"] == sig_type
    recovered = Account.recover_message(
        encode_typed_data(full_message=_typed(order, EXCHANGE)), signature=order["signature"]
    )
    assert recovered == ADDRESS


@pytest.mark.parametrize("neg_risk", [False, True])
def test_deposit_wallet_signature_wraps_an_eoa_signature(neg_risk: bool) -> None:
    signer = OrderSigner(KEY, signature_type=3, funder=FUNDER)
    signed = signer.sign(_order(neg_risk=neg_risk))
    order = signed.order
    assert order["maker"] == order["signer"] == FUNDER and order["signatureType"] == 3
    exchange = NEG_RISK_EXCHANGE if neg_risk else EXCHANGE
    assert recover_order_signer(order, exchange, 137) == ADDRESS
    assert signed.order_hash == order_hash_of(order, exchange, 137)


def test_signer_address_and_maker() -> None:
    s = OrderSigner(KEY, signature_type=2, funder=FUNDER)
    assert s.address == ADDRESS and s.maker == FUNDER and s.order_signer == ADDRESS
    s3 = OrderSigner(KEY, signature_type=3, funder=FUNDER)
    assert s3.order_signer == FUNDER
    with pytest.raises(UsageError, match="funder"):
        OrderSigner(KEY, signature_type=1)
    with pytest.raises(UsageError, match="signature type"):
        OrderSigner(KEY, signature_type=7)


# --------------------------------------------------------------------------- published vectors


def _build_fixed(exchange: str, chain_id: int, order: dict[str, Any], salt: str) -> Any:
    builder = ExchangeOrderBuilderV2(exchange, chain_id, Signer(KEY, chain_id), generate_salt=lambda: salt)
    side = order["side"]
    return builder.build_signed_order(
        OrderDataV2(
            maker=order["maker"],
            signer=order["signer"],
            tokenId=order["tokenId"],
            makerAmount=order["makerAmount"],
            takerAmount=order["takerAmount"],
            side=ClientSide.BUY if side in ("BUY", 0) else ClientSide.SELL,
            signatureType=SignatureTypeV2(int(order["signatureType"])),
            timestamp=order["timestamp"],
            metadata=order["metadata"],
            builder=order["builder"],
            expiration="0",
        )
    )


def test_published_v2_poly_1271_vector() -> None:
    vectors = load_shared("signing/published_signing_vectors.json")
    v = vectors["v2_poly_1271_order"]
    assert vectors["private_key"] == KEY and vectors["address"] == ADDRESS
    signed = _build_fixed(v["verifyingContract"], v["chain_id"], v["order"], v["salt"])
    assert signed.signature == v["expected_signature"]
    # The double's independent verifier recovers the key's EOA from the same bytes.
    order = {**v["order"], "salt": v["salt"], "signature": v["expected_signature"]}
    assert recover_order_signer(order, v["verifyingContract"], v["chain_id"]) == ADDRESS


@pytest.mark.parametrize("neg_risk", [False, True])
def test_session_signature_vectors(neg_risk: bool) -> None:
    data = load_shared("signing/session_signatures.json")
    vector = next(v for v in data["vectors"] if v["neg_risk"] is neg_risk)
    assert data["chain_id"] == 137 and data["private_key"] == KEY
    envelope = bytes.fromhex("".join(vector["signature_chunks"])[2:])
    # SESSION_KEY envelope: abi.encode(address eoa, uint256, bytes inner) || ERC-6492 magic.
    assert envelope[12:32].hex() == ADDRESS[2:].lower()
    inner_len = int.from_bytes(envelope[96:128], "big")
    inner = envelope[128 : 128 + inner_len]
    config = get_contract_config(137)
    exchange = config.neg_risk_exchange_v2 if neg_risk else config.exchange_v2
    assert exchange == vector["exchange"]
    order = data["order"]
    signed = _build_fixed(exchange, 137, order, str(order["salt"]))
    assert signed.signature == "0x" + inner.hex()
    # Our signer picks the same exchange for the same neg-risk flag: same app domain separator.
    ours = OrderSigner(KEY, signature_type=3, funder=order["maker"]).sign(
        _order(token_id=order["tokenId"], neg_risk=neg_risk, price=Decimal("0.5"), size=Decimal("100"))
    )
    sig = bytes.fromhex(ours.order["signature"][2:])
    assert sig[65:97] == inner[65:97]
    assert ours.order["makerAmount"] == order["takerAmount"] and ours.order["takerAmount"] == order["makerAmount"]


def test_fast_order_hash_matches_the_official_builder() -> None:
    signer = OrderSigner(KEY)
    for neg_risk in (False, True):
        signed = signer.sign(_order(neg_risk=neg_risk, side=Side.SELL))
        official = ExchangeOrderBuilderV2(signed.exchange, 137, Signer(KEY, 137))
        from py_clob_client_v2.order_utils.model.order_data_v2 import OrderV2

        o = signed.order
        v2 = OrderV2(
            salt=str(o["salt"]),
            maker=o["maker"],
            signer=o["signer"],
            tokenId=o["tokenId"],
            makerAmount=o["makerAmount"],
            takerAmount=o["takerAmount"],
            side=ClientSide.SELL,
            signatureType=SignatureTypeV2.EOA,
            timestamp=o["timestamp"],
            metadata=o["metadata"],
            builder=o["builder"],
        )
        assert signed.order_hash == official.build_order_hash(official.build_order_typed_data(v2))
        assert struct_order_hash(o, bytes(official.app_domain_separator)) == signed.order_hash


# --------------------------------------------------------------------------- exact amounts


@st.composite
def _orders(draw: st.DrawFn) -> tuple[Decimal, Decimal, Decimal, Side]:
    tick = draw(st.sampled_from(TICK_SIZES))
    steps = int((1 - tick) / tick)
    price = tick * draw(st.integers(min_value=1, max_value=steps - 0))
    size = Decimal(draw(st.integers(min_value=1, max_value=10_000_000))).scaleb(-2)
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    return tick, price, size, side


_HYP_SIGNER = OrderSigner(KEY)


@settings(max_examples=120, deadline=None)
@given(_orders())
def test_signed_amounts_are_exact_and_imply_the_price(case: tuple[Decimal, Decimal, Decimal, Side]) -> None:
    tick, price, size, side = case
    signed = _HYP_SIGNER.sign(_order(price=price, size=size, side=side, tick_size=tick))
    maker, taker = int(signed.order["makerAmount"]), int(signed.order["takerAmount"])
    shares, cash = (taker, maker) if side is Side.BUY else (maker, taker)
    assert shares == int(size * 100) * 10_000  # size has 2 decimals: exact in 10^-6 units
    assert Decimal(cash) == price * Decimal(shares)  # notional, exact
    assert Decimal(cash) / Decimal(shares) == price
    assert recover_order_signer(signed.order, signed.exchange, 137) == ADDRESS


def test_official_float_amounts_lose_a_cent_where_ours_do_not() -> None:
    """Why amounts are computed here: the client's float rounding turns 0.57 shares into 0.56."""
    from py_clob_client_v2.order_builder.builder import ROUNDING_CONFIG, OrderBuilder

    _, maker, taker = OrderBuilder(Signer(KEY, 137)).get_order_amounts("BUY", 0.57, 0.1, ROUNDING_CONFIG["0.1"])
    assert (maker, taker) == (56_000, 560_000)
    signed = OrderSigner(KEY).sign(_order(price=Decimal("0.1"), size=Decimal("0.57"), tick_size=Decimal("0.1")))
    assert (int(signed.order["makerAmount"]), int(signed.order["takerAmount"])) == (57_000, 570_000)


def test_expected_amounts_are_exact_units() -> None:
    assert expected_amounts(Side.BUY, Decimal("0.0025"), Decimal("13.37")) == (33_425, 13_370_000)
    assert expected_amounts(Side.SELL, Decimal("0.999"), Decimal("1")) == (1_000_000, 999_000)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"price": Decimal("0.555")}, "tick grid"),
        ({"price": Decimal("1")}, "outside"),
        ({"price": Decimal("0")}, "outside"),
        ({"size": Decimal("1.005")}, "decimals"),
        ({"size": Decimal("0")}, "positive"),
        ({"tick_size": Decimal("0.02")}, "unsupported tick"),
        ({"order_type": OrderType.FOK, "post_only": True}, "post-only"),
        ({"order_type": OrderType.GTD}, "expiration"),
        ({"token_id": "0xnot-a-number"}, "token id"),
    ],
)
def test_invalid_orders_are_refused_before_signing(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(OrderInvalid, match=message):
        OrderSigner(KEY).sign(_order(**kw))


def test_prewarmed_market_parameters_win() -> None:
    signer = OrderSigner(KEY)
    params = MarketParams(token_id=TOKEN, tick_size=Decimal("0.01"), neg_risk=True)
    # The request says tick 0.001 / not neg-risk; the venue's coarser tick and neg-risk flag win.
    with pytest.raises(OrderInvalid, match=r"tick grid 0\.01"):
        signer.sign(_order(price=Decimal("0.555"), tick_size=Decimal("0.001")), params)
    signed = signer.sign(_order(tick_size=Decimal("0.001")), params)
    assert signed.neg_risk and signed.exchange == NEG_RISK_EXCHANGE and signed.tick_size == Decimal("0.01")


def test_gtd_carries_expiration() -> None:
    signed = OrderSigner(KEY).sign(_order(order_type=OrderType.GTD, expiration=1_900_000_000))
    assert signed.body["orderType"] == "GTD" and signed.order["expiration"] == "1900000000"


# --------------------------------------------------------------------------- secrecy


async def test_dry_run_relayer_signs_and_never_needs_the_network(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    relayer = ClobRelayer("http://127.0.0.1:9", 137, KEY, dry_run=True)
    await relayer.start()
    try:
        result = await relayer.place(_order())
        assert result.outcome is Outcome.ACCEPTED and result.status is OrderStatus.DRY_RUN
        assert result.venue_order_id is None and result.order_hash
        assert result.signed_order is not None
        order = result.signed_order["order"]
        assert isinstance(order, dict)
        recovered = Account.recover_message(
            encode_typed_data(full_message=_typed(order, EXCHANGE)), signature=order["signature"]
        )
        assert recovered == ADDRESS
        # Same client id, same content: the very same signed order (idempotent re-place).
        again = await relayer.place(_order())
        assert again.signed_order == result.signed_order
        refused = await relayer.place(_order(client_order_id="c-2", price=Decimal("0.123")))
        assert refused.outcome is Outcome.REJECTED and "tick" in refused.error
        assert await relayer.open_orders() == [] and await relayer.lookup(_order()) is None
        cancel = await relayer.cancel("0x01")
        assert cancel.canceled == () and "dry-run" in cancel.not_canceled["0x01"]
    finally:
        await relayer.close()
    text = caplog.text + repr(relayer) + str(relayer) + repr(relayer.signer) + repr(result)
    assert KEY not in text and KEY[2:] not in text


def test_private_key_never_in_repr_errors_or_pickles() -> None:
    signer = OrderSigner(KEY)
    relayer = ClobRelayer("http://127.0.0.1:9", 137, KEY, api_creds=("key-id", "c2VjcmV0LXNlY3JldA==", "pass-phrase-1"))
    for text in (repr(signer), str(signer), repr(relayer), str(relayer), repr(relayer._http)):
        assert (
            KEY not in text
            and KEY[2:] not in text
            and "c2VjcmV0LXNlY3JldA==" not in text
            and "pass-phrase-1" not in text
        )
    bad = "0x" + "zz" * 32
    with pytest.raises(UsageError) as err:
        OrderSigner(bad)
    assert bad not in str(err.value) and err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    from core.redact import redact

    assert KEY not in redact(f"oops {KEY} and {KEY[2:]}")
    assert "pass-phrase-1" not in redact("passphrase=pass-phrase-1")


def test_http_status_and_transport_classification() -> None:
    import httpx

    from core.execution.relayers.clob_http import classify_status, classify_transport
    from core.execution.types import ErrorClass

    cases = {
        400: (Outcome.REJECTED, ErrorClass.BAD_REQUEST),
        401: (Outcome.REJECTED, ErrorClass.BAD_REQUEST),
        408: (Outcome.RETRYABLE, ErrorClass.TIMEOUT),
        425: (Outcome.RETRYABLE, ErrorClass.MAINTENANCE),
        429: (Outcome.RETRYABLE, ErrorClass.RATE_LIMITED),
        500: (Outcome.UNKNOWN, ErrorClass.SERVER),
        503: (Outcome.RETRYABLE, ErrorClass.SERVER),
        504: (Outcome.UNKNOWN, ErrorClass.SERVER),
    }
    for status, want in cases.items():
        err = classify_status(status, {"error": "venue says no"}, None)
        assert (err.outcome, err.error_class) == want and err.message == "venue says no" and err.status == status
    assert classify_status(429, {"errorMsg": "slow down"}, "1.5").retry_after_s == 1.5
    assert classify_status(500, "<html>bad gateway</html>", None).message == "<html>bad gateway</html>"
    assert classify_status(503, None, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after_s == 0.0  # a past date: no wait
    assert classify_status(429, None, "soon").retry_after_s is None
    request = httpx.Request("POST", "http://x/order")
    assert classify_transport(httpx.ConnectError("refused", request=request)).outcome is Outcome.RETRYABLE
    assert classify_transport(httpx.ConnectTimeout("slow", request=request)).error_class is ErrorClass.TIMEOUT
    read = classify_transport(httpx.ReadTimeout("no answer", request=request))
    assert (read.outcome, read.error_class) == (Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME)
    lost = classify_transport(httpx.RemoteProtocolError("closed", request=request))
    assert lost.outcome is Outcome.UNKNOWN
