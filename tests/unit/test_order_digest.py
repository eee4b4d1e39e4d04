"""The fast V2 order digest's parts against the official client's and eth_account's."""

from __future__ import annotations

import os
import pickle
import random
from decimal import Decimal

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.order_utils import exchange_order_builder_v2 as official

from core.execution.relayers import order_digest
from core.execution.relayers.clob_signing import OrderInvalid, OrderSigner
from core.execution.relayers.order_digest import DigestInputInvalid, DigestSigner, OrderDigestPlan
from core.execution.types import OrderRequest
from core.types import Side

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def test_type_hashes_equal_the_official_clients() -> None:
    assert order_digest.ORDER_TYPE_STRING == official.ORDER_TYPE_STRING
    assert order_digest.ORDER_TYPE_HASH == official.ORDER_TYPE_HASH
    assert order_digest.DOMAIN_TYPE_HASH == official.DOMAIN_TYPE_HASH
    assert order_digest.TYPED_DATA_SIGN_TYPE_HASH == official.SOLADY_TYPE_HASH


@pytest.mark.parametrize("chain_id", [137, 80002])
def test_domain_separators_equal_the_official_clients(chain_id: int) -> None:
    contracts = get_contract_config(chain_id)
    for exchange in (contracts.exchange_v2, contracts.neg_risk_exchange_v2):
        want = official.ExchangeOrderBuilderV2(exchange, chain_id, None).app_domain_separator
        assert order_digest.domain_separator(exchange, chain_id) == want
        assert order_digest.domain_separator(exchange.lower(), chain_id) == want


def test_keccak_is_ethereums() -> None:
    rng = random.Random(1)
    assert order_digest.keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    for n in (1, 31, 32, 33, 135, 136, 137, 384, 1000):
        data = rng.randbytes(n)
        assert order_digest.keccak256(data) == keccak(data)


def test_keccak_runs_on_the_direct_path_in_every_thread() -> None:
    """The fast keccak (pycryptodome's C code called directly, a state per thread) is the one in use,
    and hashes alike from several threads at once."""
    import threading

    assert order_digest.keccak256 is not order_digest._official_keccak256
    rng = random.Random(4)
    inputs = [rng.randbytes(rng.randrange(0, 500)) for _ in range(200)]
    want = [keccak(d) for d in inputs]
    got: list[list[bytes]] = []

    def run() -> None:
        got.append([order_digest.keccak256(d) for d in inputs])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [want] * 4


def test_digest_signature_equals_eth_accounts() -> None:
    rng = random.Random(2)
    for _ in range(50):
        secret = os.urandom(32) if rng.random() < 0.5 else rng.randbytes(32)
        digest = rng.randbytes(32)
        want = Account.unsafe_sign_hash(digest, secret).signature
        assert DigestSigner(secret).sign(digest) == bytes(want)


def test_words_refuse_what_does_not_fit() -> None:
    with pytest.raises(DigestInputInvalid):
        order_digest.address_word("0x1234")
    with pytest.raises(DigestInputInvalid):
        order_digest.address_word("0x" + "zz" * 20)
    with pytest.raises(DigestInputInvalid):
        order_digest.bytes32_word("0x" + "00" * 33)
    with pytest.raises(DigestInputInvalid):
        order_digest.uint_word(1 << 256)
    with pytest.raises(DigestInputInvalid):
        order_digest.uint_word(-1)
    plan = OrderDigestPlan.build(get_contract_config(137).exchange_v2, 137, "0x" + "11" * 20, "0x" + "22" * 20, 0)
    with pytest.raises(DigestInputInvalid):
        plan.struct_hash(1 << 256, 1, 1, 1, 0, 1)
    assert order_digest.bytes32_word("0x1") == b"\x00" * 31 + b"\x01"


def test_oversized_token_id_is_refused_as_an_invalid_order() -> None:
    signer = OrderSigner(KEY)
    too_big = str(1 << 256)
    with pytest.raises(OrderInvalid, match="uint256"):
        signer.sign(OrderRequest("c", "0xabc", too_big, Side.BUY, Decimal("0.5"), Decimal("10")))
    with pytest.raises(OrderInvalid, match="token id"):
        signer.sign(OrderRequest("c", "0xabc", "١٢٣", Side.BUY, Decimal("0.5"), Decimal("10")))  # Arabic digits


def test_sign_batch_signs_every_leg_and_reports_the_refused_one() -> None:
    signer = OrderSigner(KEY)
    good = OrderRequest("a", "0xabc", TOKEN, Side.BUY, Decimal("0.5"), Decimal("10"))
    bad = OrderRequest("b", "0xabc", TOKEN, Side.BUY, Decimal("0.555"), Decimal("10"))
    other = OrderRequest("c", "0xabc", TOKEN, Side.SELL, Decimal("0.4"), Decimal("10"), neg_risk=True)
    out = signer.sign_batch([(good, None), (bad, None), (other, None)], owner="owner-1")
    assert [type(x).__name__ for x in out] == ["SignedClobOrder", "OrderInvalid", "SignedClobOrder"]
    first, _, third = out
    assert not isinstance(first, OrderInvalid) and not isinstance(third, OrderInvalid)
    assert first.client_order_id == "a" and first.body["owner"] == "owner-1"
    assert third.neg_risk and third.exchange == signer.neg_risk_exchange


def test_fast_and_official_paths_of_one_signer_agree() -> None:
    for sig_type, funder in ((0, None), (2, "0x" + "ab" * 20), (3, "0x" + "cd" * 20)):
        signer = OrderSigner(KEY, signature_type=sig_type, funder=funder)
        order = OrderRequest("c", "0xabc", TOKEN, Side.SELL, Decimal("0.37"), Decimal("12.5"), neg_risk=True)
        fast = signer.sign(order, owner="o", salt=123, timestamp_ms=1_713_398_400_000)
        slow = signer.sign_official(order, owner="o", salt=123, timestamp_ms=1_713_398_400_000)
        assert fast == slow


def test_salts_look_like_the_official_clients() -> None:
    signer = OrderSigner(KEY)
    order = OrderRequest("c", "0xabc", TOKEN, Side.BUY, Decimal("0.5"), Decimal("10"))
    salts = {signer.sign(order).order["salt"] for _ in range(20)}
    assert len(salts) > 15 and all(isinstance(s, int) and 0 <= s < 2**64 for s in salts)


def test_the_key_is_never_shown_or_pickled() -> None:
    key = DigestSigner(bytes.fromhex(KEY[2:]))
    assert KEY[2:] not in repr(key) and KEY[2:] not in str(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
