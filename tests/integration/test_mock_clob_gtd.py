"""The CLOB double checks a GTD order's expiration as the venue does: at least a minute away (its
safety threshold), and no other order type carries one."""

from __future__ import annotations

import time

from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_http import ClobHttp
from core.sim.mock_clob import MockClobServer
from core.types import OrderType
from tests.integration.test_mock_clob_batch import _binary, _bodies, _order, _post, http, server, signer

__all__ = ["http", "server", "signer"]  # fixtures, used by name


async def test_gtd_expiration_at_least_a_minute_away(
    server: MockClobServer, signer: ClobRelayer, http: ClobHttp
) -> None:
    m = _binary(server)
    now = int(time.time())
    orders = [
        _order(m, "gtd-hour", "0.30", order_type=OrderType.GTD, expiration=now + 3660),
        _order(m, "gtd-soon", "0.30", order_type=OrderType.GTD, expiration=now + 30),
        _order(m, "gtc-plain", "0.30"),
    ]
    bodies = await _bodies(signer, orders)
    tampered = {**bodies[0], "orderType": "GTC"}  # a GTC that carries an expiration
    answer = await _post(http, [*bodies, tampered])
    assert answer[0]["orderID"] and answer[0]["status"] == "live"
    assert not answer[1]["orderID"] and "GTD order must expire at least 60s from now" in answer[1]["errorMsg"]
    assert answer[2]["orderID"] and answer[2]["status"] == "live"
    assert not answer[3]["orderID"] and "only a GTD order has an expiration" in answer[3]["errorMsg"]
