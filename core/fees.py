"""Polymarket's taker fee model (CLOB V2), exact in Decimal.

The venue charges the taker of each fill, in pUSD on top of the notional:

    fee = shares x rate x (p x (1 - p)) ** exponent      rounded DOWN to 5 decimals

``rate`` and ``exponent`` come from the market's Gamma ``feeSchedule`` ({rate, exponent,
takerOnly, rebateRate}); CLOB's compact market info carries the same pair as ``fd{r, e}``.
Every 2026 schedule we have seen (captures in the shared fixtures, Polymarket's fee page as
quoted by NautilusTrader's ``compute_commission``) has ``exponent`` 1, which gives the plain
``shares x rate x p x (1 - p)``; ``py_clob_client_v2.fees.adjust_buy_amount_for_fees`` applies
the exponent to the whole ``p x (1 - p)`` term, as :func:`taker_fee` does. Makers pay nothing
(``takerOnly``); ``rebateRate`` is the share of taker fees paid back to makers as a daily rebate,
which is income we never count on when deciding a trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation

FEE_PLACES = 5
FEE_QUANTUM = Decimal(1).scaleb(-FEE_PLACES)
MAKER_FEE = Decimal(0)
_ZERO_FEE = Decimal(0).quantize(FEE_QUANTUM)
_ONE = Decimal(1)
_BPS = Decimal(10_000)


def _check(shares: Decimal, price: Decimal, rate: Decimal, exponent: int) -> None:
    if shares < 0:
        raise ValueError(f"fee: shares must be >= 0, got {shares}")
    if not 0 <= price <= 1:
        raise ValueError(f"fee: price must be within [0, 1], got {price}")
    if rate < 0:
        raise ValueError(f"fee: rate must be >= 0, got {rate}")
    if exponent < 0:
        raise ValueError(f"fee: exponent must be >= 0, got {exponent}")


def raw_taker_fee(shares: Decimal, price: Decimal, rate: Decimal, exponent: int = 1) -> Decimal:
    """The unrounded fee; exact, since every operand is a finite Decimal and exponent an int."""
    _check(shares, price, rate, exponent)
    return shares * rate * (price * (_ONE - price)) ** exponent


def taker_fee(shares: Decimal, price: Decimal, rate: Decimal, exponent: int = 1) -> Decimal:
    """What the venue charges the taker of one fill: rounded down to 5 decimals (pUSD)."""
    if not rate or not shares:
        _check(shares, price, rate, exponent)
        return _ZERO_FEE
    return raw_taker_fee(shares, price, rate, exponent).quantize(FEE_QUANTUM, rounding=ROUND_DOWN)


def taker_fee_bound(shares: Decimal, price: Decimal, rate: Decimal, exponent: int = 1) -> Decimal:
    """An upper bound on the fees of any split of ``shares`` into fills at ``price``.

    Each fill is rounded down, so the sum of the venue's fees never exceeds the unrounded fee;
    rounding that UP keeps the bound on the 5-decimal grid without ever understating it.
    """
    if not rate or not shares:
        _check(shares, price, rate, exponent)
        return _ZERO_FEE
    return raw_taker_fee(shares, price, rate, exponent).quantize(FEE_QUANTUM, rounding=ROUND_UP)


def fee_floor_unchecked(shares: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """:func:`taker_fee` (exponent 1) without argument checks, for hot loops over book levels
    whose prices and rates were validated upstream."""
    return (shares * rate * price * (_ONE - price)).quantize(FEE_QUANTUM, rounding=ROUND_DOWN)


def _to_decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        # JSON floats go through str() so 0.04 stays 0.04 and not its binary approximation.
        dec = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{what} must be a number, got {value!r}") from exc
    if not dec.is_finite():
        raise ValueError(f"{what} must be finite, got {value!r}")
    return dec


def _check_rate(rate: Decimal, what: str) -> Decimal:
    # Above 1 the fee would exceed the notional at p=0.5; no venue schedule comes close, so such
    # a value is a unit mistake (bps passed as a rate), which we refuse rather than trade on.
    if not 0 <= rate < 1:
        raise ValueError(f"{what} must be within [0, 1) (a fraction, e.g. 0.04), got {rate}")
    return rate


def fee_rate_from_schedule(fee_schedule: object) -> Decimal:
    """The taker rate of a Gamma ``feeSchedule`` (or CLOB ``fd``) object; 0 when the market has
    none (None). Anything but a mapping with a rate is refused (ValueError)."""
    if fee_schedule is None:
        return Decimal(0)
    if not isinstance(fee_schedule, Mapping):
        raise ValueError(f"feeSchedule must be an object, got {type(fee_schedule).__name__}")
    raw = fee_schedule.get("rate", fee_schedule.get("r"))
    if raw is None:
        raise ValueError(f"feeSchedule has no rate: {dict(fee_schedule)!r}")
    return _check_rate(_to_decimal(raw, "feeSchedule.rate"), "feeSchedule.rate")


def fee_exponent_from_schedule(fee_schedule: Mapping[str, object] | None) -> int:
    """The schedule's exponent (1 when absent, which is the plain p x (1 - p) curve)."""
    if fee_schedule is None:
        return 1
    raw = fee_schedule.get("exponent", fee_schedule.get("e"))
    if raw is None:
        return 1
    dec = _to_decimal(raw, "feeSchedule.exponent")
    if dec < 0 or dec != dec.to_integral_value():
        raise ValueError(f"feeSchedule.exponent must be a whole number >= 0, got {raw!r}")
    return int(dec)


def fee_rate_from_gamma_market(market: Mapping[str, object]) -> Decimal:
    """The taker rate of a Gamma market object.

    A market with ``feesEnabled`` but no ``feeSchedule`` (seen on early-2026 crypto markets that
    used an older curve) is refused: guessing 0 there would overstate every edge.
    """
    schedule = market.get("feeSchedule")
    if schedule is not None:
        return fee_rate_from_schedule(schedule)
    if market.get("feesEnabled"):
        raise ValueError(
            f"market {market.get('conditionId') or market.get('slug')!r} has feesEnabled but no feeSchedule"
        )
    return Decimal(0)


def rate_from_bps(bps: int | str | Decimal) -> Decimal:
    """The ``--fee-bps`` override: 20 bps -> rate 0.002."""
    rate = _to_decimal(bps, "fee bps") / _BPS
    return _check_rate(rate, "fee bps / 10000")
