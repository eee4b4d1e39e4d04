"""``/close``'s size: the shares free to sell (core/control/closing.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.control.closing import close_ticket
from core.control.types import ControlError
from core.types import MarketInfo, Mode, TokenInfo

YES = TokenInfo("1010", "Yes")
MARKET = MarketInfo("0xm", "Will it?", "will-it", (YES, TokenInfo("2020", "No")))


def _close(held: str, settling: str = "0") -> D:
    ticket = close_ticket(
        MARKET, YES, D("0.40"), held=D(held), open_orders=[], book=None, mode=Mode.PAPER, user="t", settling=D(settling)
    )
    return ticket.size


def test_shares_sold_and_settling_are_not_sold_again() -> None:
    # 10 held; a sale of 4 the venue matched, its trade not settled: the position still shows 10
    assert _close("10", settling="-4") == D(6)
    assert _close("10") == D(10)
    assert _close("10", settling="3") == D(10)  # bought, not settled: not in hand to sell yet
    with pytest.raises(ControlError, match="no Yes shares of will-it held"):
        _close("4", settling="-4")
