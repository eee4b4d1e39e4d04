"""The Data API's ``GET /positions?user=`` answered from a CLOB double's venue (its markets and ledger).

Shared by the Data API double (:mod:`core.sim.mock_data_api`) and the CLOB double, which answers the
same route so that one local venue serves both APIs (a service pointed at the CLOB double can set
``[data_api] url`` to the same address).

``user`` (required, any case), ``sizeThreshold`` (default 1, as the venue's), ``limit`` (default
100, at most :data:`MAX_LIMIT`) and ``offset``; positions are listed in token order.
"""

from __future__ import annotations

import re
from decimal import Decimal

from eth_utils.address import is_address, to_checksum_address

from core.sim.http_double import HttpRequest, HttpResponse
from core.sim.mock_clob_state import MockMarket
from core.sim.mock_clob_venue import ClobVenue

MAX_LIMIT = 500
ZERO = Decimal(0)


def slug_of(question: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", question.lower()).strip("-")


def positions_of(venue: ClobVenue, address: str, *, threshold: Decimal = ZERO) -> list[dict[str, object]]:
    holder = to_checksum_address(address)
    held = sorted((token, size) for (who, token), size in venue.ledger.shares.items() if who == holder)
    return [_item(venue, holder, token, size) for token, size in held if size != 0 and size >= threshold]


async def answer_positions(venue: ClobVenue, req: HttpRequest, *, max_limit: int = MAX_LIMIT) -> HttpResponse:
    user = req.param("user") or ""
    if not is_address(user):
        return HttpResponse.error(400, "user must be an address")
    try:
        threshold = Decimal(req.param("sizeThreshold") or "1")
        limit = int(req.param("limit") or "100")
        offset = int(req.param("offset") or "0")
    except (ArithmeticError, ValueError):
        return HttpResponse.error(400, "bad sizeThreshold, limit or offset")
    if limit < 0 or offset < 0 or not threshold.is_finite():
        return HttpResponse.error(400, "bad sizeThreshold, limit or offset")
    items = positions_of(venue, user, threshold=threshold)
    return HttpResponse.json(items[offset : offset + min(limit, max_limit)])


def _item(venue: ClobVenue, holder: str, token: str, size: Decimal) -> dict[str, object]:
    market: MockMarket | None = venue.token_market.get(token)
    outcomes = [o for _, o in market.tokens] if market is not None else []
    outcome = market.outcome_of(token) if market is not None else ""
    question = market.question if market is not None else ""
    return {
        "proxyWallet": holder.lower(),
        "asset": token,
        "conditionId": market.condition_id if market is not None else "",
        "size": float(size),  # the venue sends JSON numbers (the client reads their text exactly)
        "avgPrice": 0,
        "curPrice": 0,
        "currentValue": 0,
        "outcome": outcome,
        "outcomeIndex": outcomes.index(outcome) if outcome in outcomes else 0,
        "title": question,
        "slug": slug_of(question),
        "redeemable": False,
        "mergeable": False,
        "negativeRisk": bool(market and market.neg_risk),
        "endDate": "2030-01-01",
    }
