"""Column types without a database: exact money conversion and UTC timestamps, per dialect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from core.store.columns import Money, UTCDateTime

SQLITE = sqlite.dialect()
PG = postgresql.dialect()
M = Money(20, 6)


def _roundtrip(value: object, dialect: object) -> Decimal | None:
    proc = M.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[arg-type]
    bound = proc(value) if proc else M.process_bind_param(value, dialect)  # type: ignore[arg-type]
    return M.process_result_value(bound, dialect)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", [SQLITE, PG], ids=["sqlite", "postgresql"])
@pytest.mark.parametrize(
    "text", ["0.123456", "123456789.000001", "0", "-0.000001", "1", "0.5", "99999.99", "-42.000100"]
)
def test_money_roundtrips_exactly(dialect: object, text: str) -> None:
    assert _roundtrip(Decimal(text), dialect) == Decimal(text)
    assert _roundtrip(text, dialect) == Decimal(text)


def test_money_sqlite_storage_is_integer_micro_units() -> None:
    proc = M.dialect_impl(SQLITE).bind_processor(SQLITE)
    assert proc(Decimal("0.123456")) == 123456
    assert proc(Decimal("123456789.000001")) == 123456789000001
    assert proc(7) == 7_000_000
    assert proc(None) is None
    assert M.process_bind_param(Decimal("0.5"), SQLITE) == 500_000


@pytest.mark.parametrize("dialect", [SQLITE, PG], ids=["sqlite", "postgresql"])
@pytest.mark.parametrize("bad", [0.5, 1e-3, True, Decimal("NaN"), Decimal("Infinity"), object()])
def test_money_refuses_floats_and_non_numbers(dialect: object, bad: object) -> None:
    proc = M.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        proc(bad)
    with pytest.raises((TypeError, ValueError)):
        M.process_bind_param(bad, dialect)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", [SQLITE, PG], ids=["sqlite", "postgresql"])
def test_money_refuses_silent_rounding_and_overflow(dialect: object) -> None:
    proc = M.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 6 decimals"):
        proc(Decimal("0.1234567"))
    with pytest.raises(ValueError, match="does not fit"):
        proc(Decimal("1e14"))
    with pytest.raises(ValueError, match="not a decimal"):
        proc("abc")
    # trailing zeros beyond the scale are not extra precision
    assert proc(Decimal("0.1000000")) is not None


def test_money_sqlite_range_is_int64() -> None:
    big = Decimal("9223372036854.775807")
    assert _roundtrip(big, SQLITE) == big
    with pytest.raises(ValueError):
        _roundtrip(big + Decimal("0.000001"), SQLITE)


@given(st.decimals(min_value=Decimal("-9e12"), max_value=Decimal("9e12"), places=6, allow_nan=False))
def test_money_property_exact_on_both_dialects(value: Decimal) -> None:
    assert _roundtrip(value, SQLITE) == value
    assert _roundtrip(value, PG) == value


def test_money_fast_path_matches_generic_path() -> None:
    proc = M.dialect_impl(SQLITE).bind_processor(SQLITE)
    for text in ["0.001", "12.5", "-3", "1000000.000001"]:
        assert proc(Decimal(text)) == M.process_bind_param(Decimal(text), SQLITE)


@pytest.mark.parametrize("dialect", [SQLITE, PG], ids=["sqlite", "postgresql"])
def test_utc_datetime_converts_and_returns_aware(dialect: object) -> None:
    t = UTCDateTime()
    paris = datetime(2026, 3, 1, 13, 30, tzinfo=timezone(timedelta(hours=1)))
    bound = t.process_bind_param(paris, dialect)  # type: ignore[arg-type]
    if dialect is SQLITE:
        assert bound == datetime(2026, 3, 1, 12, 30) and bound.tzinfo is None
    out = t.process_result_value(bound, dialect)  # type: ignore[arg-type]
    assert out == paris and out.tzinfo == UTC


def test_utc_datetime_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), SQLITE)
    with pytest.raises(TypeError):
        UTCDateTime().process_bind_param("2026-01-01", SQLITE)  # type: ignore[arg-type]
