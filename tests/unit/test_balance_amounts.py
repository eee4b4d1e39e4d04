"""``GET /balance-allowance`` amounts: 10^-6 units (the documented form) or decimal strings (a form
some answers take), read exactly; anything else is an unknown outcome, never a guess."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from core.execution.relayers.clob_http import VenueError
from core.execution.relayers.clob_reads import _amount


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1000000000", Decimal(1000)), ("0", Decimal(0)), ("250.500000", Decimal("250.5")), (1500000, Decimal("1.5"))],
)
def test_amount_forms(raw: object, expected: Decimal) -> None:
    assert _amount(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "abc", "-5", "-1.5", "1e6", "NaN", "Infinity", "1.5.2"])
def test_unreadable_amounts_raise(raw: object) -> None:
    with pytest.raises(VenueError, match="unreadable amount"):
        _amount(raw)


def test_the_captured_answers_read(shared_fixtures: Path) -> None:
    rest = shared_fixtures / "clob_rest"
    full = json.loads((rest / "http_balance_allowance_collateral.json").read_text())
    assert _amount(full["balance"]) == Decimal(1000)
    assert _amount(full["allowance"]) == Decimal("999999999")
    bare = json.loads((rest / "http_balance_allowance_no_allowance.json").read_text())
    assert "allowance" not in bare and _amount(bare["balance"]) == Decimal("250.5")
