"""The settlement calls Polybot makes, encoded exactly: merge and redeem through the CLOB V2
collateral adapters, which burn the outcome tokens through the ConditionalTokens contract, take
its USDC.e and pay the caller pUSD.

Both adapters keep the ConditionalTokens signatures (``mergePositions(address,bytes32,bytes32,
uint256[],uint256)`` and ``redeemPositions(address,bytes32,bytes32,uint256[])``); they read the
condition id (and the amount) and ignore the collateral argument, which is set to the CTF's own
collateral (USDC.e) as that signature means. A standard market goes to the CtfCollateralAdapter, a
neg-risk member to the NegRiskCtfCollateralAdapter. Amounts are in 10^-6 shares (outcome tokens
have 6 decimals, like pUSD). See ../shared/POLYMARKET_FACTS.md, "Settlement and account sync".
"""

from __future__ import annotations

from typing import Any

from core.chain.types import ChainCall

# EIP-55 checksummed as written (tests/unit/test_chain_calldata.py checks them): eth_abi and eth_utils
# (~0.15 s to import) load only when a call is encoded, not with every service start
CTF_COLLATERAL_ADAPTER = "0xAdA100Db00Ca00073811820692005400218FcE1f"
NEG_RISK_CTF_COLLATERAL_ADAPTER = "0xadA2005600Dec949baf300f4C6120000bDB6eAab"
USDC_E = "0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174"
PARENT_COLLECTION = bytes(32)
BINARY_PARTITION = (1, 2)  # index sets of outcome 0 (YES) and outcome 1 (NO)

MERGE_SIGNATURE = "mergePositions(address,bytes32,bytes32,uint256[],uint256)"
REDEEM_SIGNATURE = "redeemPositions(address,bytes32,bytes32,uint256[])"
MAX_UINT256 = 2**256 - 1


def selector(signature: str) -> bytes:
    from eth_utils.crypto import keccak

    return bytes(keccak(text=signature))[:4]


def encode(types: list[str], values: list[Any]) -> bytes:
    """ABI-encode ``values`` as ``types`` (eth_abi)."""
    from eth_abi.abi import encode as abi_encode

    return abi_encode(types, values)


def adapter_for(neg_risk: bool) -> tuple[str, str]:
    """(name, address) of the collateral adapter that settles a market of this kind."""
    if neg_risk:
        return "NegRiskCtfCollateralAdapter", NEG_RISK_CTF_COLLATERAL_ADAPTER
    return "CtfCollateralAdapter", CTF_COLLATERAL_ADAPTER


def condition_bytes(condition_id: str) -> bytes:
    raw = condition_id[2:] if condition_id.lower().startswith("0x") else condition_id
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        raise ValueError(f"condition id {condition_id!r} is not hex") from None
    if len(value) != 32:
        raise ValueError(f"condition id {condition_id!r} is not 32 bytes")
    return value


def merge_call(condition_id: str, amount_units: int, *, neg_risk: bool) -> ChainCall:
    """Merge ``amount_units`` (10^-6 shares) of YES+NO of one market into pUSD."""
    if not 0 < amount_units <= MAX_UINT256:
        raise ValueError(f"merge amount must be a positive number of units, not {amount_units}")
    name, to = adapter_for(neg_risk)
    cid = condition_bytes(condition_id)
    partition = list(BINARY_PARTITION)
    data = selector(MERGE_SIGNATURE) + encode(
        ["address", "bytes32", "bytes32", "uint256[]", "uint256"],
        [USDC_E, PARENT_COLLECTION, cid, partition, amount_units],
    )
    args: tuple[tuple[str, object], ...] = (
        ("collateralToken", USDC_E),
        ("parentCollectionId", PARENT_COLLECTION),
        ("conditionId", cid),
        ("partition", partition),
        ("amount", amount_units),
    )
    return ChainCall(to=to, data=data, function=MERGE_SIGNATURE, args=args, contract=name)


def redeem_call(condition_id: str, *, neg_risk: bool) -> ChainCall:
    """Redeem every share held of a resolved market (the adapter reads the balances) into pUSD."""
    name, to = adapter_for(neg_risk)
    cid = condition_bytes(condition_id)
    index_sets = list(BINARY_PARTITION)
    data = selector(REDEEM_SIGNATURE) + encode(
        ["address", "bytes32", "bytes32", "uint256[]"], [USDC_E, PARENT_COLLECTION, cid, index_sets]
    )
    args: tuple[tuple[str, object], ...] = (
        ("collateralToken", USDC_E),
        ("parentCollectionId", PARENT_COLLECTION),
        ("conditionId", cid),
        ("indexSets", index_sets),
    )
    return ChainCall(to=to, data=data, function=REDEEM_SIGNATURE, args=args, contract=name)
