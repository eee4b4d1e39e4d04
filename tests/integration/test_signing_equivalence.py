"""The fast order signer equals the official ``py-clob-client-v2``, byte for byte.

For the same order (same key, signature type, funder, exchange, salt and timestamp) the body
``OrderSigner.sign`` produces (fast path: :mod:`core.execution.relayers.order_digest`) must equal
what the official client's ``ExchangeOrderBuilderV2.build_signed_order`` + ``order_to_json_v2``
produce: every field, its type, the key order, the serialised JSON, the signature and the order
hash. The reference is built here from the official library directly, not through the code under
test. Amounts are computed here too (exact Decimal), because the official client's own float
amount rounding differs on purpose (see clob_signing's docstring).

Cases: a seeded random set and a hypothesis search over both exchanges (standard and neg-risk),
chains 137 and 80002, BUY/SELL, every tick size, signature types 0/1/2/3 (with a funder for
1-3), GTC/GTD (with expirations)/FOK/FAK, post-only, random salts (up to 256 bits), timestamps
and token ids; plus the published signing vectors in ../shared/fixtures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.constants import BYTES32_ZERO
from py_clob_client_v2.order_builder.builder import OrderBuilder
from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2
from py_clob_client_v2.order_utils.model.order_data_v2 import OrderDataV2, order_to_json_v2
from py_clob_client_v2.order_utils.model.side import Side as ClientSide
from py_clob_client_v2.order_utils.model.signature_type_v2 import SignatureTypeV2
from py_clob_client_v2.signer import Signer

from core.execution.relayers import order_digest
from core.execution.relayers.clob_signing import TICK_SIZES, MarketParams, OrderSigner, serialize_body
from core.execution.relayers.order_digest import DigestSigner, OrderDigestPlan
from core.execution.types import OrderRequest
from core.types import OrderType, Side
from tests.conftest import load_shared

HARDHAT_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
HARDHAT_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class Case:
    key: str
    chain_id: int
    signature_type: int
    funder: str | None
    order: OrderRequest
    params: MarketParams | None
    salt: int
    timestamp_ms: int
    owner: str

    @property
    def neg_risk(self) -> bool:
        return self.params.neg_risk if self.params is not None else self.order.neg_risk


def _random_case(rng: random.Random, i: int) -> Case:
    key = HARDHAT_KEY if rng.random() < 0.3 else "0x" + f"{rng.randrange(1, _SECP256K1_N):064x}"
    sig_type = rng.choice((0, 1, 2, 3))
    funder = None
    if sig_type or rng.random() < 0.2:
        raw = f"0x{rng.getrandbits(160):040x}"
        funder = raw if rng.random() < 0.5 else to_checksum_address(raw)  # the signer checksums it
    tick = rng.choice(TICK_SIZES)
    steps = int((1 - tick) / tick)
    price = tick * rng.randint(1, steps)
    size = Decimal(rng.randint(1, 10_000_000)).scaleb(-2)
    order_type = rng.choice(list(OrderType))
    post_only = order_type in (OrderType.GTC, OrderType.GTD) and rng.random() < 0.3
    token = str(rng.getrandbits(rng.choice((8, 64, 255, 256))))
    order = OrderRequest(
        client_order_id=f"eq-{i}",
        market="0xabc",
        token_id=token,
        side=rng.choice((Side.BUY, Side.SELL)),
        price=price,
        size=size,
        order_type=order_type,
        post_only=post_only,
        tick_size=tick,
        neg_risk=rng.random() < 0.5,
        expiration=rng.randint(1_700_000_000, 2_100_000_000) if order_type is OrderType.GTD else 0,
    )
    params = None
    if rng.random() < 0.3:  # pre-warmed market parameters: their neg-risk flag decides the exchange
        params = MarketParams(token_id=token, tick_size=tick, neg_risk=rng.random() < 0.5)
    return Case(
        key=key,
        chain_id=rng.choice((137, 137, 80002)),
        signature_type=sig_type,
        funder=funder,
        order=order,
        params=params,
        salt=rng.getrandbits(rng.choice((32, 41, 64, 256))),
        timestamp_ms=rng.randint(1_600_000_000_000, 2_100_000_000_000),
        owner=rng.choice(("", "5d1c266a-ed39-b9bd-c1f5-f24ae3e14a7b")),
    )


@lru_cache(maxsize=64)
def _fast_signer(key: str, chain_id: int, signature_type: int, funder: str | None) -> OrderSigner:
    return OrderSigner(key, chain_id=chain_id, signature_type=signature_type, funder=funder)


def _units(value: Decimal) -> int:
    units = value * 1_000_000
    assert units == units.to_integral_value(), value
    return int(units)


def official(case: Case) -> tuple[dict[str, object], str]:
    """(POST body, order hash) from the official client alone, for the same order."""
    signer = Signer(case.key, case.chain_id)
    funder = to_checksum_address(case.funder) if case.funder is not None else None
    builder = OrderBuilder(signer=signer, signature_type=SignatureTypeV2(case.signature_type), funder=funder)
    contracts = get_contract_config(case.chain_id)
    exchange = contracts.neg_risk_exchange_v2 if case.neg_risk else contracts.exchange_v2
    o = case.order
    shares, cash = _units(o.size), _units(o.price * o.size)
    maker_amount, taker_amount = (cash, shares) if o.side is Side.BUY else (shares, cash)
    data = OrderDataV2(
        maker=builder.funder,
        tokenId=o.token_id,
        makerAmount=str(maker_amount),
        takerAmount=str(taker_amount),
        side=ClientSide.BUY if o.side is Side.BUY else ClientSide.SELL,
        signer=builder._v2_order_signer(),
        signatureType=SignatureTypeV2(case.signature_type),
        timestamp=str(case.timestamp_ms),
        metadata=BYTES32_ZERO,
        builder=BYTES32_ZERO,
        expiration=str(o.expiration if o.order_type is OrderType.GTD else 0),
    )
    exchange_builder = ExchangeOrderBuilderV2(exchange, case.chain_id, signer, generate_salt=lambda: str(case.salt))
    signed = exchange_builder.build_signed_order(data)
    body = order_to_json_v2(signed, case.owner, o.order_type.value, o.post_only, False)
    order_hash = exchange_builder.build_order_hash(exchange_builder.build_order_typed_data(signed))
    return body, order_hash


def assert_equal_to_official(case: Case) -> None:
    fast = _fast_signer(case.key, case.chain_id, case.signature_type, case.funder).sign(
        case.order, case.params, owner=case.owner, salt=case.salt, timestamp_ms=case.timestamp_ms
    )
    body, order_hash = official(case)
    ours = fast.body["order"]
    theirs = body["order"]
    assert isinstance(ours, dict) and isinstance(theirs, dict)
    assert ours["signature"] == theirs["signature"], case
    for name in theirs:
        assert ours[name] == theirs[name] and type(ours[name]) is type(theirs[name]), (name, case)
    assert list(ours) == list(theirs)
    assert fast.body == body and list(fast.body) == list(body)
    assert serialize_body(fast.body) == serialize_body(body)
    assert fast.order_hash == order_hash
    contracts = get_contract_config(case.chain_id)
    assert fast.exchange == (contracts.neg_risk_exchange_v2 if case.neg_risk else contracts.exchange_v2)


def test_seeded_orders_sign_exactly_as_the_official_client() -> None:
    rng = random.Random(20261205)
    cases = [_random_case(rng, i) for i in range(300)]
    # the set covers what it claims to
    assert {c.signature_type for c in cases} == {0, 1, 2, 3}
    assert {c.neg_risk for c in cases} == {False, True}
    assert {c.order.side for c in cases} == {Side.BUY, Side.SELL}
    assert {c.order.tick_size for c in cases} == set(TICK_SIZES)
    assert {c.order.order_type for c in cases} == set(OrderType)
    assert {c.chain_id for c in cases} == {137, 80002}
    assert any(c.salt >= 1 << 128 for c in cases) and any(c.order.post_only for c in cases)
    for case in cases:
        assert_equal_to_official(case)


@st.composite
def _cases(draw: st.DrawFn) -> Case:
    return _random_case(random.Random(draw(st.integers(min_value=0, max_value=2**64))), draw(st.integers(0, 999)))


@settings(max_examples=120, deadline=None)
@given(_cases())
def test_hypothesis_orders_sign_exactly_as_the_official_client(case: Case) -> None:
    assert_equal_to_official(case)


def test_a_wrong_type_hash_byte_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison has teeth: one flipped bit in the fast path's type hash fails it."""
    case = _random_case(random.Random(7), 0)
    assert_equal_to_official(case)
    broken = bytes([order_digest.ORDER_TYPE_HASH[0] ^ 1]) + order_digest.ORDER_TYPE_HASH[1:]
    monkeypatch.setattr(order_digest, "ORDER_TYPE_HASH", broken)
    with pytest.raises(AssertionError):
        assert_equal_to_official(case)


# --------------------------------------------------------------------------- published vectors


def test_published_poly_1271_vector_from_the_fast_path() -> None:
    vectors = load_shared("signing/published_signing_vectors.json")
    v = vectors["v2_poly_1271_order"]
    assert vectors["private_key"] == HARDHAT_KEY
    o = v["order"]
    plan = OrderDigestPlan.build(v["verifyingContract"], v["chain_id"], o["maker"], o["signer"], o["signatureType"])
    signature, _ = plan.sign(
        DigestSigner(bytes.fromhex(HARDHAT_KEY[2:])),
        int(v["salt"]),
        int(o["tokenId"]),
        int(o["makerAmount"]),
        int(o["takerAmount"]),
        int(o["side"]),
        int(o["timestamp"]),
    )
    assert signature == v["expected_signature"]


@pytest.mark.parametrize("neg_risk", [False, True])
def test_session_vectors_inner_signature_from_the_fast_path(neg_risk: bool) -> None:
    data = load_shared("signing/session_signatures.json")
    vector = next(v for v in data["vectors"] if v["neg_risk"] is neg_risk)
    assert data["private_key"] == HARDHAT_KEY
    envelope = bytes.fromhex("".join(vector["signature_chunks"])[2:])
    assert envelope[12:32].hex() == HARDHAT_ADDRESS[2:].lower()
    inner = envelope[128 : 128 + int.from_bytes(envelope[96:128], "big")]
    o = data["order"]
    signer = OrderSigner(HARDHAT_KEY, chain_id=data["chain_id"], signature_type=3, funder=o["maker"])
    assert signer.exchange_for(neg_risk) == vector["exchange"]
    signed = signer.sign(
        OrderRequest(
            "vector",
            "0xabc",
            o["tokenId"],
            Side.BUY,
            Decimal("0.5"),
            Decimal("100"),
            neg_risk=neg_risk,
        ),
        salt=int(o["salt"]),
        timestamp_ms=int(o["timestamp"]),
    )
    plan = OrderDigestPlan.build(vector["exchange"], data["chain_id"], o["maker"], o["signer"], 3)
    signature, _ = plan.sign(
        DigestSigner(bytes.fromhex(HARDHAT_KEY[2:])),
        int(o["salt"]),
        int(o["tokenId"]),
        int(o["makerAmount"]),
        int(o["takerAmount"]),
        0 if o["side"] == "BUY" else 1,
        int(o["timestamp"]),
    )
    assert signature == "0x" + inner.hex()
    # OrderSigner (other amounts: 0.5 x 100 shares) wraps with the same app domain separator
    ours = bytes.fromhex(str(signed.order["signature"])[2:])
    assert ours[65:97] == inner[65:97] and signed.exchange == vector["exchange"]
