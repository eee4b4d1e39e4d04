"""The taker fee formula on worked examples, and the fee schedule read from real Gamma captures."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.fees import (
    fee_exponent_from_schedule,
    fee_rate_from_gamma_market,
    fee_rate_from_schedule,
    rate_from_bps,
    raw_taker_fee,
    taker_fee,
    taker_fee_bound,
)
from tests.conftest import load_shared


@pytest.mark.parametrize(
    ("shares", "price", "rate", "expected"),
    [
        # 100 x 0.05 x 0.5 x 0.5 = 1.25 (the peak of the curve)
        ("100", "0.5", "0.05", "1.25000"),
        # 100 x 0.05 x 0.01 x 0.99 = 0.0495 — the curve is symmetric ...
        ("100", "0.01", "0.05", "0.04950"),
        # ... 100 x 0.05 x 0.99 x 0.01 = 0.0495
        ("100", "0.99", "0.05", "0.04950"),
        # 100 x 0.04 x 0.3 x 0.7 = 0.84
        ("100", "0.3", "0.04", "0.84000"),
        # 7 x 0.07 x 0.33 x 0.67 = 0.49 x 0.2211 = 0.108339 -> rounded DOWN to 0.10833
        ("7", "0.33", "0.07", "0.10833"),
        # 12.34 x 0.03 x 0.57 x 0.43 = 0.3702 x 0.2451 = 0.09073602 -> 0.09073
        ("12.34", "0.57", "0.03", "0.09073"),
        # 1 x 0.001 x 0.01 x 0.99 = 0.0000099 -> below the 5th decimal: nothing charged
        ("1", "0.01", "0.001", "0.00000"),
        # fee-free market
        ("1000", "0.5", "0", "0.00000"),
        # tick 0.001 market: 250 x 0.05 x 0.123 x 0.877 = 12.5 x 0.107871 = 1.3483875 -> 1.34838
        ("250", "0.123", "0.05", "1.34838"),
    ],
)
def test_taker_fee_worked_examples(shares: str, price: str, rate: str, expected: str) -> None:
    fee = taker_fee(D(shares), D(price), D(rate))
    assert fee == D(expected)
    assert fee.as_tuple().exponent == -5


def test_rounding_down_matters_and_the_bound_rounds_up() -> None:
    # 0.108339 exact: the venue charges 0.10833, the conservative bound is 0.10834
    assert raw_taker_fee(D(7), D("0.33"), D("0.07")) == D("0.108339")
    assert taker_fee(D(7), D("0.33"), D("0.07")) == D("0.10833")
    assert taker_fee_bound(D(7), D("0.33"), D("0.07")) == D("0.10834")
    # an exact fee is not pushed up by the bound
    assert taker_fee_bound(D(100), D("0.5"), D("0.05")) == D("1.25000")


def test_exponent_applies_to_the_whole_p_times_one_minus_p_term() -> None:
    # 100 x 0.25 x (0.5 x 0.5)^2 = 25 x 0.0625 = 1.5625
    assert taker_fee(D(100), D("0.5"), D("0.25"), exponent=2) == D("1.56250")
    # exponent 0: a flat rate per share, 10 x 0.01 = 0.1
    assert taker_fee(D(10), D("0.2"), D("0.01"), exponent=0) == D("0.10000")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((D(-1), D("0.5"), D("0.05")), "shares"),
        ((D(1), D("1.5"), D("0.05")), "price"),
        ((D(1), D("0.5"), D("-0.05")), "rate"),
    ],
)
def test_taker_fee_refuses_nonsense(args: tuple[D, D, D], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        taker_fee(*args)


def test_fee_rate_from_real_neg_risk_market_schedule() -> None:
    market = load_shared("gamma/gamma_market_live.json")
    schedule = market["feeSchedule"]
    assert fee_rate_from_schedule(schedule) == D("0.04")
    assert fee_exponent_from_schedule(schedule) == 1
    assert fee_rate_from_gamma_market(market) == D("0.04")
    # 100 shares bought at 0.5 on that politics market: 100 x 0.04 x 0.25 = 1
    assert taker_fee(D(100), D("0.5"), fee_rate_from_schedule(schedule)) == D("1.00000")


def test_fee_rate_from_real_sports_schedule() -> None:
    market = load_shared("gamma/gamma_market_sports_market_money_line.json")
    assert fee_rate_from_gamma_market(market) == D("0.03")
    assert fee_exponent_from_schedule(market["feeSchedule"]) == 1


def test_fee_free_markets_in_a_real_event_have_rate_zero() -> None:
    (event,) = load_shared("gamma/gamma_event.json")  # /events answers with a list
    assert event["markets"]
    for market in event["markets"]:
        assert market["feesEnabled"] is False
        assert fee_rate_from_gamma_market(market) == D(0)


def test_fees_enabled_without_schedule_is_refused_not_guessed() -> None:
    market = load_shared("gamma/gamma_market.json")
    assert market["feesEnabled"] is True and "feeSchedule" not in market
    with pytest.raises(ValueError, match="feesEnabled but no feeSchedule"):
        fee_rate_from_gamma_market(market)


def test_schedule_parsing_edge_cases() -> None:
    assert fee_rate_from_schedule(None) == D(0)
    assert fee_exponent_from_schedule(None) == 1
    assert fee_rate_from_schedule({"r": "0.07", "e": 1}) == D("0.07")  # CLOB's compact fd{r, e}
    assert fee_rate_from_schedule({"rate": 0}) == D(0)
    assert fee_exponent_from_schedule({"rate": 0.05}) == 1
    assert fee_exponent_from_schedule({"rate": 0.05, "exponent": 2.0}) == 2
    for bad in ({"rate": "abc"}, {"rate": True}, {"rate": "NaN"}, {"rate": -0.01}, {"rate": 5}, {"takerOnly": True}):
        with pytest.raises(ValueError, match=r"feeSchedule"):
            fee_rate_from_schedule(bad)
    with pytest.raises(ValueError, match="whole number"):
        fee_exponent_from_schedule({"rate": 0.05, "exponent": 1.5})
    with pytest.raises(ValueError, match="object"):
        fee_rate_from_schedule([0.05])


def test_rate_from_bps() -> None:
    assert rate_from_bps(20) == D("0.002")
    assert rate_from_bps("150") == D("0.015")
    assert rate_from_bps(D("2.5")) == D("0.00025")
    assert rate_from_bps(0) == 0
    for bad in (-1, 10_000, "x"):
        with pytest.raises(ValueError):
            rate_from_bps(bad)


prices = st.integers(min_value=0, max_value=10_000).map(lambda n: D(n) / D(10_000))
shares_st = st.integers(min_value=0, max_value=10_000_000).map(lambda n: D(n) / D(100))
rates = st.integers(min_value=0, max_value=2_000).map(lambda n: D(n) / D(10_000))


@given(shares_st, prices, rates)
def test_fee_is_floor_of_exact_and_symmetric(shares: D, price: D, rate: D) -> None:
    exact = raw_taker_fee(shares, price, rate)
    fee = taker_fee(shares, price, rate)
    bound = taker_fee_bound(shares, price, rate)
    assert fee <= exact <= bound
    assert exact - fee < D("0.00001")
    assert bound - exact < D("0.00001")
    assert fee == taker_fee(shares, 1 - price, rate)
    # the fee never exceeds a quarter of rate x shares (the p = 0.5 peak)
    assert fee <= shares * rate / 4
