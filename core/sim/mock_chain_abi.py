"""The contracts the chain double knows, written here from the facts (addresses, signatures), not
taken from the code under test: pUSD (ERC-20), ConditionalTokens (ERC-1155) and the two CLOB V2
collateral adapters. Calldata is decoded with eth_abi; a revert carries ``Error(string)`` data
the way a real node returns it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

PUSD = to_checksum_address("0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB")
CTF = to_checksum_address("0x4D97DCd97eC945f40cF65F87097ACe5EA0476045")
CTF_ADAPTER = to_checksum_address("0xAdA100Db00Ca00073811820692005400218FcE1f")
NEG_RISK_ADAPTER = to_checksum_address("0xadA2005600Dec949baf300f4C6120000bDB6eAab")
ADAPTERS: dict[str, str] = {CTF_ADAPTER: "CtfCollateralAdapter", NEG_RISK_ADAPTER: "NegRiskCtfCollateralAdapter"}
CONTRACTS: dict[str, str] = {PUSD: "pUSD", CTF: "ConditionalTokens", **ADAPTERS}
MAX_UINT256 = 2**256 - 1
ERROR_SELECTOR = bytes(keccak(text="Error(string)"))[:4]


@dataclass(frozen=True, slots=True)
class Function:
    signature: str  # e.g. "balanceOf(address)"
    names: tuple[str, ...]  # argument names, for the decoded view of a transaction
    view: bool = False

    @property
    def name(self) -> str:
        return self.signature.partition("(")[0]

    @property
    def types(self) -> list[str]:
        inner = self.signature.partition("(")[2][:-1]
        return _split_types(inner)

    @property
    def selector(self) -> bytes:
        return bytes(keccak(text=self.signature))[:4]


def _split_types(inner: str) -> list[str]:
    """Top-level argument types (no tuples among the known functions, so a plain split works)."""
    return [t for t in inner.split(",") if t]


_ERC20 = (
    Function("balanceOf(address)", ("account",), view=True),
    Function("allowance(address,address)", ("owner", "spender"), view=True),
    Function("decimals()", (), view=True),
    Function("approve(address,uint256)", ("spender", "amount")),
    Function("transfer(address,uint256)", ("to", "amount")),
)
_ERC1155 = (
    Function("balanceOf(address,uint256)", ("account", "id"), view=True),
    Function("balanceOfBatch(address[],uint256[])", ("accounts", "ids"), view=True),
    Function("isApprovedForAll(address,address)", ("account", "operator"), view=True),
    Function("payoutDenominator(bytes32)", ("conditionId",), view=True),
    Function("payoutNumerators(bytes32,uint256)", ("conditionId", "index"), view=True),
    Function("setApprovalForAll(address,bool)", ("operator", "approved")),
)
_ADAPTER = (
    Function(
        "mergePositions(address,bytes32,bytes32,uint256[],uint256)",
        ("collateralToken", "parentCollectionId", "conditionId", "partition", "amount"),
    ),
    Function(
        "redeemPositions(address,bytes32,bytes32,uint256[])",
        ("collateralToken", "parentCollectionId", "conditionId", "indexSets"),
    ),
)
ABIS: dict[str, dict[bytes, Function]] = {
    PUSD: {f.selector: f for f in _ERC20},
    CTF: {f.selector: f for f in _ERC1155},
    CTF_ADAPTER: {f.selector: f for f in _ADAPTER},
    NEG_RISK_ADAPTER: {f.selector: f for f in _ADAPTER},
}


class Revert(Exception):
    """The call reverted; ``reason`` is the ``Error(string)`` message (empty for a bare revert)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> str:
        return f"execution reverted: {self.reason}" if self.reason else "execution reverted"

    @property
    def data(self) -> str:
        if not self.reason:
            return "0x"
        return "0x" + (ERROR_SELECTOR + encode(["string"], [self.reason])).hex()


@dataclass(frozen=True, slots=True)
class DecodedCall:
    contract: str  # readable name
    function: Function
    args: tuple[object, ...]

    def named_args(self) -> dict[str, object]:
        return {name: _plain(v) for name, v in zip(self.function.names, self.args, strict=True)}


def _plain(value: object) -> object:
    """JSON-friendly: bytes as 0x-hex, tuples as lists, addresses checksummed."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def decode_call(to: str, data: bytes) -> DecodedCall:
    """The function and arguments ``data`` calls on ``to``; a Revert when nothing there takes it."""
    abi = ABIS.get(to)
    if abi is None:
        raise Revert(f"mock chain: no contract at {to}")
    function = abi.get(bytes(data[:4]))
    if function is None:
        raise Revert()  # no fallback function: a bare revert, as solidity does
    try:
        args = decode(function.types, bytes(data[4:]))
    except (DecodingError, ValueError):
        raise Revert() from None  # malformed arguments revert without a reason
    return DecodedCall(CONTRACTS[to], function, tuple(args))


def encode_result(types: list[str], values: list[object]) -> bytes:
    return encode(types, values)
