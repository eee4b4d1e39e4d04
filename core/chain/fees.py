"""EIP-1559 fees and gas limits within the configured caps (all in wei / gas units, integers).

- tip = the node's ``eth_maxPriorityFeePerGas``, held to ``max_priority_fee_gwei``;
- max fee = 2 x the latest base fee + tip (room for the base fee to rise over a few blocks), held
  to ``max_fee_gwei``; a base fee alone over that cap refuses the transaction (it could not be
  mined at any fee we allow);
- a replacement raises both by ``fee_bump_percent`` (nodes want at least 10 % on both), and at
  least to what a fresh transaction would pay now, within the caps; when the caps leave no room
  for the bump, there is no replacement (the one in flight is kept);
- gas limit = the estimate plus :data:`GAS_MARGIN_PERCENT`, held to ``gas_limit_cap``; an
  estimate over the cap refuses the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from core.settings.sections import ChainSettings

GWEI = 10**9
GAS_MARGIN_PERCENT = 20
MIN_BUMP_PERCENT = 10  # what nodes (geth's txpool price bump) require of a replacement


def wei_from_gwei(gwei: Decimal) -> int:
    """Exact: a cap in gwei (up to 9 decimals mean something) as whole wei, rounded down."""
    return int((gwei * GWEI).to_integral_value(rounding=ROUND_FLOOR))


def gwei_text(wei: int) -> str:
    return f"{Decimal(wei) / GWEI:f} gwei"


def _ceil_percent(value: int, percent: int) -> int:
    return -(-value * (100 + percent) // 100)


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def describe(self) -> str:
        return f"maxFee {gwei_text(self.max_fee_per_gas)}, tip {gwei_text(self.max_priority_fee_per_gas)}"


@dataclass(frozen=True, slots=True)
class Caps:
    max_fee: int
    max_tip: int
    gas_limit: int
    bump_percent: int

    @classmethod
    def of(cls, chain: ChainSettings) -> Caps:
        return cls(
            wei_from_gwei(chain.max_fee_gwei),
            wei_from_gwei(chain.max_priority_fee_gwei),
            chain.gas_limit_cap,
            chain.fee_bump_percent,
        )


class FeeRefusal(Exception):
    """The caps do not allow this transaction; the message says which and by how much."""


def initial_fees(base_fee: int, suggested_tip: int, caps: Caps) -> Fees:
    if base_fee > caps.max_fee:
        raise FeeRefusal(
            f"the base fee {gwei_text(base_fee)} alone exceeds chain.max_fee_gwei ({gwei_text(caps.max_fee)})"
        )
    tip = min(max(suggested_tip, 0), caps.max_tip)
    max_fee = min(2 * base_fee + tip, caps.max_fee)
    return Fees(max_fee, min(tip, max_fee))


def bumped_fees(previous: Fees, base_fee: int, suggested_tip: int, caps: Caps) -> Fees | None:
    """Fees for a replacement of ``previous``, or None when the caps leave no room for one."""
    fresh_tip = min(max(suggested_tip, 0), caps.max_tip)
    tip = min(max(_ceil_percent(previous.max_priority_fee_per_gas, caps.bump_percent), fresh_tip), caps.max_tip)
    max_fee = max(_ceil_percent(previous.max_fee_per_gas, caps.bump_percent), 2 * base_fee + tip)
    max_fee = min(max_fee, caps.max_fee)
    enough_tip = tip >= _ceil_percent(previous.max_priority_fee_per_gas, MIN_BUMP_PERCENT)
    enough_fee = max_fee >= _ceil_percent(previous.max_fee_per_gas, MIN_BUMP_PERCENT)
    if not (enough_tip and enough_fee) or tip > max_fee:
        return None
    return Fees(max_fee, tip)


def gas_limit(estimate: int, caps: Caps) -> int:
    if estimate > caps.gas_limit:
        raise FeeRefusal(f"estimated gas {estimate} exceeds chain.gas_limit_cap ({caps.gas_limit})")
    return min(_ceil_percent(estimate, GAS_MARGIN_PERCENT), caps.gas_limit)
