"""The settlement calls' exact calldata, decoded against the adapters' ABI written out here
independently of core.chain.calls; and a signed transaction read back field by field."""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_abi.abi import decode
from eth_account import Account
from eth_utils.crypto import keccak

from core.chain.calls import merge_call, redeem_call
from core.chain.fees import Fees
from core.chain.signing import Signer, decode_signed

# The adapters keep ConditionalTokens' signatures (POLYMARKET_FACTS.md, "Settlement and account sync").
MERGE = ("mergePositions", ["address", "bytes32", "bytes32", "uint256[]", "uint256"])
REDEEM = ("redeemPositions", ["address", "bytes32", "bytes32", "uint256[]"])
CTF_COLLATERAL_ADAPTER = "0xAdA100Db00Ca00073811820692005400218FcE1f"
NEG_RISK_CTF_COLLATERAL_ADAPTER = "0xadA2005600Dec949baf300f4C6120000bDB6eAab"
USDC_E = "0x2791bca1f2de4661ed88a30c99a7a9449aa84174"
CONDITION = "0x" + "5a" * 31 + "01"
KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # a well-known test key


def _selector(name: str, types: list[str]) -> bytes:
    return bytes(keccak(text=f"{name}({','.join(types)})"))[:4]


@pytest.mark.parametrize("neg_risk", [False, True])
def test_merge_calldata_decodes_to_the_adapter_call(neg_risk: bool) -> None:
    call = merge_call(CONDITION, 12_500_000, neg_risk=neg_risk)
    name, types = MERGE
    assert call.data[:4] == _selector(name, types) == bytes.fromhex("9e7212ad")
    collateral, parent, condition, partition, amount = decode(types, call.data[4:])
    assert (collateral, parent, condition) == (USDC_E, bytes(32), bytes.fromhex(CONDITION[2:]))
    assert list(partition) == [1, 2] and amount == 12_500_000
    assert call.to == (NEG_RISK_CTF_COLLATERAL_ADAPTER if neg_risk else CTF_COLLATERAL_ADAPTER)
    assert call.value == 0 and "amount=12500000" in call.describe()


@pytest.mark.parametrize("neg_risk", [False, True])
def test_redeem_calldata_decodes_to_the_adapter_call(neg_risk: bool) -> None:
    call = redeem_call(CONDITION, neg_risk=neg_risk)
    name, types = REDEEM
    assert call.data[:4] == _selector(name, types)
    collateral, parent, condition, index_sets = decode(types, call.data[4:])
    assert (collateral, parent, condition, list(index_sets)) == (
        USDC_E,
        bytes(32),
        bytes.fromhex(CONDITION[2:]),
        [1, 2],
    )
    assert call.to == (NEG_RISK_CTF_COLLATERAL_ADAPTER if neg_risk else CTF_COLLATERAL_ADAPTER)


def test_bad_merge_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        merge_call(CONDITION, 0, neg_risk=False)
    with pytest.raises(ValueError, match="32 bytes"):
        merge_call("0x1234", 1, neg_risk=False)


def test_a_signed_transaction_reads_back_exactly() -> None:
    call = merge_call(CONDITION, 3_000_000, neg_risk=False)
    signer = Signer(KEY)
    fees = Fees(max_fee_per_gas=85 * 10**9, max_priority_fee_per_gas=25 * 10**9)
    signed = signer.sign(call, chain_id=137, nonce=7, gas_limit=193_200, fees=fees)
    fields = decode_signed(signed.raw)
    assert fields["type"] == 2 and fields["chainId"] == 137 and fields["nonce"] == 7
    assert fields["to"] == CTF_COLLATERAL_ADAPTER.lower() and fields["data"] == call.data and fields["value"] == 0
    assert (fields["maxFeePerGas"], fields["maxPriorityFeePerGas"], fields["gas"]) == (85 * 10**9, 25 * 10**9, 193_200)
    assert fields["from"] == signer.address == Account.from_key(KEY).address
    assert signed.tx_hash == "0x" + bytes(keccak(signed.raw)).hex()


def test_the_signer_never_shows_its_key() -> None:
    signer = Signer(KEY)
    assert KEY[2:] not in repr(signer) and signer.address in repr(signer)
    with pytest.raises(ValueError, match="not a valid private key") as err:
        Signer("0x1234")
    assert "1234" not in str(err.value)


def test_decimal_caps_are_exact_wei() -> None:
    from core.chain.fees import wei_from_gwei

    assert wei_from_gwei(Decimal("30.000000001")) == 30_000_000_001
    assert wei_from_gwei(Decimal("0.1")) == 100_000_000


def test_the_addresses_written_in_core_chain_calls_are_eip55_checksummed() -> None:
    from eth_utils.address import to_checksum_address

    from core.chain import calls

    for address in (calls.CTF_COLLATERAL_ADAPTER, calls.NEG_RISK_CTF_COLLATERAL_ADAPTER, calls.USDC_E):
        assert address == to_checksum_address(address)
