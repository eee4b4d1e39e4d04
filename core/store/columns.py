"""Column types that behave the same on SQLite and PostgreSQL.

- :class:`Money`: exact ``Decimal``. PostgreSQL stores ``NUMERIC(p, s)``; SQLite has no decimal
  type (SQLAlchemy's ``Numeric`` goes through a binary float there), so SQLite stores the value
  as an integer count of 10^-s units: exact, sortable and summable in SQL. Values with more
  decimals than the column's scale are refused rather than rounded silently, and floats are
  refused outright: the caller rounds explicitly.
- :class:`UTCDateTime`: timezone-aware UTC ``datetime`` in and out on both backends; naive
  datetimes are refused (they hide local-time bugs).
- :data:`JSONDoc`: JSON on SQLite, JSONB on PostgreSQL.
- :data:`BigIntPK`: 64-bit identity on PostgreSQL, ``INTEGER PRIMARY KEY`` (the rowid) on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_INT64_MAX = 2**63 - 1

JSONDoc = JSON().with_variant(JSONB(), "postgresql")
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def money_storage_type(precision: int = 20, scale: int = 6) -> TypeEngine[Any]:
    """The storage type of a :class:`Money` column (what migrations create)."""
    return Numeric(precision, scale, asdecimal=True).with_variant(BigInteger(), "sqlite")


class Money(TypeDecorator[Decimal]):
    """Exact decimal money/size/price column (``NUMERIC(precision, scale)``)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 20, scale: int = 6) -> None:
        super().__init__(precision, scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)
        # SQLite keeps the units in a signed 64-bit integer: the smaller of the two bounds wins
        self._max_units = min(10**precision, _INT64_MAX + 1)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def _coerce(self, value: object) -> Decimal:
        if isinstance(value, Decimal):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, str):
            try:
                return Decimal(value.strip())
            except InvalidOperation:
                raise ValueError(f"money value {value!r} is not a decimal number") from None
        # floats are refused on purpose: a binary float is already inexact
        raise TypeError(f"money value must be Decimal, int or str, not {type(value).__name__} ({value!r})")

    def to_units(self, value: object) -> int:
        """The value as an integer count of 10^-scale units; refuses anything inexact or too big.

        This is the hot path of bulk inserts: Decimal in, two cheap Decimal operations.
        """
        dec = value if type(value) is Decimal else self._coerce(value)
        if not dec.is_finite():
            raise ValueError(f"money value {value!r} is not finite")
        units = dec.scaleb(self.scale)
        whole = int(units)
        if whole != units:
            raise ValueError(f"money value {value} has more than {self.scale} decimals; round it explicitly first")
        if not -self._max_units < whole < self._max_units:
            raise ValueError(f"money value {value} does not fit NUMERIC({self.precision}, {self.scale})")
        return whole

    def process_bind_param(self, value: object, dialect: Dialect) -> Any:
        if value is None:
            return None
        units = self.to_units(value)
        if dialect.name == "sqlite":
            return units
        return Decimal(units).scaleb(-self.scale)

    def bind_processor(self, dialect: Dialect) -> Any:
        # A lean closure instead of TypeDecorator's generic chain: money columns are the hot
        # path of the feed's bulk inserts (4 per book delta). The common case (a finite
        # Decimal within range and scale) is inlined; everything else goes through to_units,
        # which converts str/int or raises. (A memo would not help: hashing a fresh Decimal
        # costs more than converting it.)
        to_units = self.to_units
        scale = self.scale
        bound = self._max_units
        dec_type = Decimal
        if dialect.name == "sqlite":

            def process_units(value: object) -> Any:
                if value is None:
                    return None
                if type(value) is dec_type and value.is_finite():
                    units = value.scaleb(scale)
                    whole = int(units)
                    if whole == units and -bound < whole < bound:
                        return whole
                return to_units(value)

            return process_units

        impl_processor = self.load_dialect_impl(dialect).bind_processor(dialect)

        def process_decimal(value: object) -> Any:
            if value is None:
                return None
            if type(value) is dec_type and value.is_finite():  # exact at this scale: bound as it is
                units = value.scaleb(scale)
                whole = int(units)
                if whole == units and -bound < whole < bound:
                    return impl_processor(value) if impl_processor is not None else value
            dec = Decimal(to_units(value)).scaleb(-scale)
            return impl_processor(dec) if impl_processor is not None else dec

        return process_decimal

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale)
        return Decimal(value).quantize(self._quantum)

    def process_literal_param(self, value: object, dialect: Dialect) -> str:
        bound = self.process_bind_param(value, dialect)
        return "NULL" if bound is None else str(bound)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends (TIMESTAMPTZ on PostgreSQL)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"timestamp must be a datetime, not {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give a timezone-aware (UTC) datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite's DATETIME drops the offset; store UTC wall time, re-attach UTC on read
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
