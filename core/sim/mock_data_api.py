"""Local double of Polymarket's Data API ``GET /positions?user=`` (aiohttp, :mod:`core.sim.http_double`).

It answers from a CLOB double's :class:`~core.sim.mock_clob_venue.ClobVenue` (its markets and its
:class:`~core.sim.mock_clob_state.Ledger` of shares per address and token), so that trades made at
the CLOB double show up here as they would at the venue. Built on a running CLOB double with
:meth:`MockDataApiServer.over`, or on its own venue with the demo markets.

- The query and the answer are :mod:`core.sim.mock_data_positions`' (the CLOB double answers the
  same route from the same code).
- :meth:`set_position` sets what an address holds (a position opened on the website).
- Faults (:meth:`inject`), consumed by the next N requests: ``429`` (with ``Retry-After``),
  ``500``, ``502``, ``503``, ``malformed`` (HTTP 200, a body that is not a list of positions),
  ``hang`` (no answer for ``delay_s``, then the connection closes).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

from eth_utils.address import to_checksum_address

from core.sim.http_double import DROP, HttpRequest, HttpResponse, MiniHttpServer, sleep_until
from core.sim.mock_clob import MockClobServer
from core.sim.mock_clob_faults import Fault, take_fault
from core.sim.mock_clob_venue import ClobVenue, demo_markets
from core.sim.mock_data_positions import MAX_LIMIT, answer_positions, positions_of

FAULTS = ("429", "500", "502", "503", "malformed", "hang")
MALFORMED_BODY = b'{"error": "not what a client expects", "positions": [{"asset": 1'
ZERO = Decimal(0)


class MockDataApiServer:
    def __init__(
        self,
        venue: ClobVenue | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_limit: int = MAX_LIMIT,
    ) -> None:
        if venue is None:
            venue = ClobVenue(137, Decimal(0))
            for market, _ in demo_markets():
                venue.add_market(market)
        self.venue = venue
        self.host = host
        self.max_limit = max_limit
        self.faults: list[Fault] = []
        self.requests: list[HttpRequest] = []
        self.statuses: Counter[int] = Counter()
        self._stopped = asyncio.Event()
        self._http = MiniHttpServer(self._handle, host, port)

    @classmethod
    def over(cls, clob: MockClobServer, host: str = "127.0.0.1", port: int = 0) -> MockDataApiServer:
        """A Data API that reads the CLOB double's ledger and markets (one venue, two APIs)."""
        return cls(clob.venue, host, port)

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        await self._http.start()

    async def stop(self) -> None:
        self._stopped.set()
        await self._http.stop()

    async def __aenter__(self) -> MockDataApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ controls for tests and the CLI

    def set_position(self, address: str, token_id: str, size: Decimal) -> None:
        """``address`` now holds ``size`` shares of ``token_id`` (e.g. bought on the website)."""
        self.venue.ledger.shares[(to_checksum_address(address), token_id)] = size

    def inject(
        self, kind: str, *, count: int = 1, retry_after: str | float | None = None, delay_s: float = 30.0
    ) -> None:
        """Make the next ``count`` requests fail with ``kind`` (one of :data:`FAULTS`)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULTS)})")
        shown = None if retry_after is None else str(retry_after)
        self.faults.append(Fault(kind, count, None, None, None, shown, delay_s))

    def positions_of(self, address: str, *, threshold: Decimal = ZERO) -> list[dict[str, object]]:
        return positions_of(self.venue, address, threshold=threshold)

    # ------------------------------------------------------------------ requests

    async def _handle(self, req: HttpRequest) -> HttpResponse:
        self.requests.append(req)
        response = await self._answer(req)
        self.statuses[response.status] += 1
        return response

    async def _answer(self, req: HttpRequest) -> HttpResponse:
        fault = take_fault(self.faults, req.method, req.path)
        if fault is not None:
            early = fault.status_answer()
            if early is not None:
                return early
            if fault.kind == "malformed":
                return HttpResponse(200, MALFORMED_BODY, {"Content-Type": "application/json"})
            await sleep_until(self._stopped, fault.delay_s)
            return DROP
        if req.path.rstrip("/") != "/positions":
            return HttpResponse.error(404, f"no route {req.method} {req.path}")
        if req.method != "GET":
            return HttpResponse.error(405, f"method {req.method} not allowed on {req.path}")
        return await answer_positions(self.venue, req, max_limit=self.max_limit)
