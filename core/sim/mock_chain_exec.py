"""What the chain double's contracts do to the shared :class:`~core.sim.mock_clob_state.Ledger`.

Every call is checked in full before anything moves, so a revert leaves the ledger as it was.
The same code answers ``eth_call`` and ``eth_estimateGas`` (``apply=False``) and mines a
transaction (``apply=True``). Ledger amounts are Decimal shares and pUSD; on the wire they are
integer 10^-6 units, converted exactly (a ledger balance finer than a unit reads as its floor).
Revert reasons follow the Gnosis ConditionalTokens contract where it has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from eth_utils.address import to_checksum_address

from core.money import UNIT, from_units
from core.sim.mock_chain_abi import (
    ADAPTERS,
    CTF,
    MAX_UINT256,
    NEG_RISK_ADAPTER,
    PUSD,
    DecodedCall,
    Revert,
    decode_call,
    encode_result,
)
from core.sim.mock_clob_state import Ledger

BASE_GAS = 21_000
CALL_GAS = {  # gas used on top of BASE_GAS, in the range the real contracts use
    "approve": 25_000,
    "transfer": 31_000,
    "setApprovalForAll": 25_000,
    "mergePositions": 140_000,
    "redeemPositions": 120_000,
}
VIEW_GAS = 4_000
BINARY_INDEX_SETS = (1, 2)  # outcome 0 (YES), outcome 1 (NO)
NOT_APPROVED = "ERC1155: need operator approval for 3rd party transfers."


@dataclass(slots=True)
class ChainMarket:
    condition_id: str  # 0x + 64 lower-case hex
    yes_token: str  # decimal token id, as the CLOB names it
    no_token: str
    neg_risk: bool = False
    winner: str | None = None  # the winning token id once resolved

    @property
    def adapter(self) -> str:
        return NEG_RISK_ADAPTER if self.neg_risk else next(iter(ADAPTERS))


def condition_key(condition_id: str | bytes) -> str:
    if isinstance(condition_id, bytes):
        return "0x" + condition_id.hex()
    text = condition_id.lower()
    return text if text.startswith("0x") else "0x" + text


def units_of(amount: Decimal) -> int:
    """A ledger amount as on-chain units: floored, and never below zero (a uint256)."""
    return max(0, int((amount * UNIT).to_integral_value(rounding=ROUND_DOWN)))


@dataclass(frozen=True, slots=True)
class CallResult:
    output: bytes
    gas_used: int
    call: DecodedCall | None  # None for a plain value transfer


@dataclass(slots=True)
class ChainWorld:
    """Contract state: the ledger (pUSD and outcome shares), approvals, markets, native balances."""

    ledger: Ledger
    default_approved: bool = True
    native_default: int = 10**21  # 1,000 POL per address unless set
    markets: dict[str, ChainMarket] = field(default_factory=dict)
    operators: dict[tuple[str, str], bool] = field(default_factory=dict)  # CTF (owner, operator)
    allowances: dict[tuple[str, str], int] = field(default_factory=dict)  # pUSD (owner, spender)
    native: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ reads

    def is_operator(self, owner: str, operator: str) -> bool:
        return self.operators.get((owner, operator), self.default_approved)

    def allowance(self, owner: str, spender: str) -> int:
        return self.allowances.get((owner, spender), MAX_UINT256 if self.default_approved else 0)

    def balance(self, address: str) -> int:
        return self.native.get(address, self.native_default)

    def market(self, condition_id: bytes) -> ChainMarket | None:
        return self.markets.get(condition_key(condition_id))

    def token_units(self, owner: str, token_id: int) -> int:
        return units_of(self.ledger.held(owner, str(token_id)))

    # ------------------------------------------------------------------ execution

    def execute(self, sender: str, to: str | None, value: int, data: bytes, *, apply: bool) -> CallResult:
        """Run one call from ``sender``; raises :class:`Revert` (nothing moved) when it cannot."""
        if to is None:
            raise Revert("mock chain: contract creation is not supported")
        to = to_checksum_address(to)
        if not data and to not in CONTRACTS_WITH_CODE:
            self._pay(sender, to, value, apply)
            return CallResult(b"", BASE_GAS, None)
        call = decode_call(to, data)
        if value:
            raise Revert()  # none of these functions is payable
        handler = getattr(self, f"_{call.function.name}", None)
        if handler is None:  # pragma: no cover - every ABI entry has a handler
            raise Revert()
        output: bytes = handler(sender, to, call.args, apply)
        gas = BASE_GAS + (VIEW_GAS if call.function.view else CALL_GAS[call.function.name])
        return CallResult(output, gas, call)

    def _pay(self, sender: str, to: str, value: int, apply: bool) -> None:
        if self.balance(sender) < value:
            raise Revert("insufficient balance for transfer")
        if apply and value:
            self.native[sender] = self.balance(sender) - value
            self.native[to] = self.balance(to) + value

    # --- pUSD (ERC-20)

    def _balanceOf(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        owner = to_checksum_address(str(args[0]))
        if to == PUSD:
            return encode_result(["uint256"], [units_of(self.ledger.cash(owner))])
        return encode_result(["uint256"], [self.token_units(owner, _int(args[1]))])

    def _allowance(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        owner, spender = (to_checksum_address(str(a)) for a in args)
        return encode_result(["uint256"], [self.allowance(owner, spender)])

    def _decimals(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        return encode_result(["uint8"], [6])

    def _approve(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        if apply:
            self.allowances[(sender, to_checksum_address(str(args[0])))] = _int(args[1])
        return encode_result(["bool"], [True])

    def _transfer(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        receiver, amount = to_checksum_address(str(args[0])), from_units(_int(args[1]))
        if self.ledger.cash(sender) < amount:
            raise Revert("ERC20: transfer amount exceeds balance")
        if apply:
            self.ledger.set_cash(sender, self.ledger.cash(sender) - amount)
            self.ledger.set_cash(receiver, self.ledger.cash(receiver) + amount)
        return encode_result(["bool"], [True])

    # --- ConditionalTokens (ERC-1155)

    def _balanceOfBatch(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        owners, ids = _seq(args[0]), _seq(args[1])
        if len(owners) != len(ids):
            raise Revert("ERC1155: owners and IDs must have same lengths")
        held = [self.token_units(to_checksum_address(str(o)), _int(i)) for o, i in zip(owners, ids, strict=True)]
        return encode_result(["uint256[]"], [held])

    def _isApprovedForAll(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        owner, operator = (to_checksum_address(str(a)) for a in args)
        return encode_result(["bool"], [self.is_operator(owner, operator)])

    def _setApprovalForAll(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        if apply:
            self.operators[(sender, to_checksum_address(str(args[0])))] = bool(args[1])
        return b""

    def _payoutDenominator(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        market = self.market(_bytes(args[0]))
        return encode_result(["uint256"], [1 if market is not None and market.winner is not None else 0])

    def _payoutNumerators(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        market, index = self.market(_bytes(args[0])), _int(args[1])
        if market is None or market.winner is None:
            return encode_result(["uint256"], [0])
        if index > 1:
            raise Revert()  # out of the payout array's bounds
        token = market.yes_token if index == 0 else market.no_token
        return encode_result(["uint256"], [1 if token == market.winner else 0])

    # --- collateral adapters

    def _market_for(self, sender: str, adapter: str, condition_id: object) -> ChainMarket:
        market = self.market(_bytes(condition_id))
        if market is None:
            raise Revert("condition not prepared yet")
        if market.adapter != adapter:
            # the other adapter's position ids are of another collateral: the sender holds none of them
            raise Revert(
                f"mock chain: condition is {'' if market.neg_risk else 'not '}neg-risk, use {ADAPTERS[market.adapter]}"
            )
        if not self.is_operator(sender, adapter):
            raise Revert(NOT_APPROVED)
        return market

    def _mergePositions(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        market = self._market_for(sender, to, args[2])
        if _bytes(args[1]) != bytes(32):
            raise Revert("mock chain: only a merge into collateral (parentCollectionId 0) is supported")
        if sorted(_int(i) for i in _seq(args[3])) != list(BINARY_INDEX_SETS):
            raise Revert("got invalid index set")
        amount = from_units(_int(args[4]))
        if amount <= 0:
            raise Revert("mock chain: merge amount must be positive")
        if min(self.ledger.held(sender, market.yes_token), self.ledger.held(sender, market.no_token)) < amount:
            raise Revert("ERC1155: burn amount exceeds balance")
        if apply:
            self.ledger.give(sender, market.yes_token, -amount)
            self.ledger.give(sender, market.no_token, -amount)
            self.ledger.set_cash(sender, self.ledger.cash(sender) + amount)
        return b""

    def _redeemPositions(self, sender: str, to: str, args: tuple[object, ...], apply: bool) -> bytes:
        market = self._market_for(sender, to, args[2])
        if market.winner is None:
            raise Revert("result for condition not received yet")
        index_sets = {_int(i) for i in _seq(args[3])}
        if not index_sets or not index_sets <= set(BINARY_INDEX_SETS):
            raise Revert("got invalid index set")
        tokens = [
            t for i, t in zip(BINARY_INDEX_SETS, (market.yes_token, market.no_token), strict=True) if i in index_sets
        ]
        payout = sum((self.ledger.held(sender, t) for t in tokens if t == market.winner), Decimal(0))
        if apply:
            for token in tokens:
                self.ledger.give(sender, token, -self.ledger.held(sender, token))
            self.ledger.set_cash(sender, self.ledger.cash(sender) + payout)
        return b""


CONTRACTS_WITH_CODE = frozenset({PUSD, CTF, *ADAPTERS})


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _bytes(value: object) -> bytes:
    assert isinstance(value, bytes)
    return value


def _seq(value: object) -> tuple[object, ...]:
    assert isinstance(value, tuple | list)
    return tuple(value)
