"""``/close MARKET OUTCOME [PRICE]``: one limit sell of every share of an outcome still free to sell.

Free to sell: the shares Polybot holds minus what its open sells of that token already promise
(the risk gate refuses more), rounded down to the venue's 0.01-share step. The price is the best
bid unless the trader names one; a GTC at the best bid takes the bid's depth and leaves any rest
open at that price, visible in /orders with its [Cancel] button.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from core.control.orders import SIZE_PLACES, OrderOptions, marketable, new_ticket, plain
from core.control.types import ControlError, OrderTicket
from core.types import BookView, MarketInfo, Mode, Side, TokenInfo

if TYPE_CHECKING:
    from core.execution.records import OrderRecord


def free_shares(held: Decimal, open_orders: Iterable[OrderRecord], token_id: str) -> tuple[Decimal, Decimal]:
    """(shares free to sell, shares already in open sells) of ``token_id``."""
    selling = sum(
        (o.size - o.filled_size for o in open_orders if o.token_id == token_id and o.side is Side.SELL), Decimal(0)
    )
    return max(held - selling, Decimal(0)).quantize(SIZE_PLACES, rounding=ROUND_DOWN), selling


def close_ticket(
    market: MarketInfo,
    token: TokenInfo,
    price: Decimal | None,
    *,
    held: Decimal,
    open_orders: Iterable[OrderRecord],
    book: BookView | None,
    mode: Mode,
    user: str,
    settling: Decimal = Decimal(0),
) -> OrderTicket:
    """The sell that closes what is free of ``token``'s ``held`` shares, at ``price`` or the best
    bid; ``settling``: the token's net shares matched for us and not settled (sold ones, negative,
    still show in ``held`` but are not free)."""
    name = market.slug or market.condition_id
    held = held - max(Decimal(0), -settling)
    size, selling = free_shares(held, open_orders, token.token_id)
    if size <= 0:
        if selling > 0:
            raise ControlError(
                f"all {plain(held)} {token.outcome} shares of {name} are already in open sells: see /orders",
                "nothing_free",
            )
        raise ControlError(f"no {token.outcome} shares of {name} held", "no_position")
    if price is None:
        price = book.best_bid() if book is not None else None
        if price is None:
            raise ControlError(f"no bid for {token.outcome} of {name} to sell into: give a PRICE", "no_bid")
    note = f"/close: sells all {plain(size)} {token.outcome} shares free to sell"
    if selling > 0:
        note += f" ({plain(selling)} more already in open sells)"
    return new_ticket(
        market,
        token.outcome,
        Side.SELL,
        price,
        size,
        mode=mode,
        user=user,
        options=OrderOptions(),
        note=note,
        marketable=marketable(Side.SELL, price, book),
    )
