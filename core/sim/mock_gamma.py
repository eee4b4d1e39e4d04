"""A local Gamma double: ``GET /markets``, ``/markets/keyset`` and ``/events`` over real HTTP
(aiohttp, through :class:`core.sim.http_double.MiniHttpServer`), so httpx talks to it exactly as
it talks to Gamma. Filters follow Gamma: ``limit`` (capped at 100), ``offset`` (422 above 10,000;
keyset pages take ``after_cursor`` instead, see :mod:`core.sim.mock_gamma_keyset`), ``active``,
``closed``, ``condition_ids`` (repeated or comma-separated, 422 above 100) and ``slug``, ``id``. Fault injection for tests: the next N responses can
be 429 with ``Retry-After``, 500, delayed past the client's timeout, or not JSON.

Used by ``polybot mock-gamma``, the demo and the tests.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.defaults import GAMMA_MAX_LIMIT, GAMMA_MAX_OFFSET
from core.sim.http_double import HttpRequest, HttpResponse, MiniHttpServer, sleep_until
from core.sim.mock_gamma_keyset import CursorError, KeysetOptions, keyset_page, multi

log = logging.getLogger(__name__)

DEFAULT_MARKETS_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "gamma" / "markets.json"


# --------------------------------------------------------------------------------------------
# Market data
# --------------------------------------------------------------------------------------------


def load_markets_file(path: Path) -> list[dict[str, Any]]:
    """Gamma market items from a file.

    Accepts a JSON list of ``/markets`` items, one market object, ``{"markets": [...]}``, or
    a list of ``/events`` items (their markets are flattened, each keeping its event under
    ``events`` as ``/markets`` does).
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read Gamma markets from {path}: {exc}") from exc
    if isinstance(data, Mapping) and isinstance(data.get("markets"), list) and "conditionId" not in data:
        if "negRiskMarketID" in data or "ticker" in data:  # a single event object
            return _flatten_events([data])
        return [dict(m) for m in data["markets"]]
    if isinstance(data, Mapping):
        return [dict(data)]
    if isinstance(data, list):
        if data and all(isinstance(x, Mapping) and isinstance(x.get("markets"), list) for x in data):
            return _flatten_events(data)
        return [x if not isinstance(x, Mapping) else dict(x) for x in data]
    raise ValueError(f"{path}: expected a JSON list of Gamma markets or events")


def _flatten_events(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ev in events:
        summary = {k: v for k, v in ev.items() if k != "markets"}
        for market in ev["markets"]:
            item = dict(market)
            item.setdefault("events", [summary])
            out.append(item)
    return out


def events_from_markets(markets: Sequence[Any]) -> list[dict[str, Any]]:
    """``/events`` view: markets grouped under the first event they embed (order kept)."""
    events: dict[str, dict[str, Any]] = {}
    for item in markets:
        if not isinstance(item, Mapping):
            continue
        embedded = item.get("events")
        if not (isinstance(embedded, list) and embedded and isinstance(embedded[0], Mapping)):
            continue
        ev = embedded[0]
        key = str(ev.get("id"))
        if key not in events:
            events[key] = {**copy.deepcopy(dict(ev)), "markets": []}
        events[key]["markets"].append({k: v for k, v in item.items() if k != "events"})
    return list(events.values())


def token_ids(markets: Sequence[Any]) -> list[str]:
    """Every CLOB token id of Gamma items, in order (e.g. to subscribe a mock feed to them)."""
    out: list[str] = []
    for item in markets:
        if isinstance(item, Mapping) and isinstance(item.get("clobTokenIds"), str):
            try:
                out.extend(str(t) for t in json.loads(item["clobTokenIds"]))
            except ValueError:
                continue
    return out


def _token_id(seed: str) -> str:
    """A deterministic uint256 decimal string shaped like a real CLOB token id."""
    return str(int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big"))


def _hex32(seed: str) -> str:
    return "0x" + hashlib.sha256(seed.encode()).hexdigest()


def make_market(
    slug: str,
    question: str,
    *,
    outcomes: Sequence[str] = ("Yes", "No"),
    prices: Sequence[str] | None = None,
    gamma_id: int = 1,
    tick: str = "0.01",
    min_size: int = 5,
    fee_rate: str | None = None,
    neg_risk_market_id: str | None = None,
    event: Mapping[str, Any] | None = None,
    active: bool = True,
    closed: bool = False,
    end_date: str = "2026-12-31T23:59:59Z",
    neg_risk_other: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``/markets`` item in Gamma's real shape (string-encoded list fields, real key names).

    Ids derive from ``slug`` so generated data is reproducible run to run.
    """
    if prices is None:
        share = 1 / len(outcomes)
        prices = [f"{share:.4f}"] * len(outcomes)
    item: dict[str, Any] = {
        "id": str(gamma_id),
        "question": question,
        "conditionId": _hex32(f"condition:{slug}"),
        "slug": slug,
        "endDate": end_date,
        "outcomes": json.dumps(list(outcomes)),
        "outcomePrices": json.dumps(list(prices)),
        "clobTokenIds": json.dumps([_token_id(f"token:{slug}:{o}") for o in outcomes]),
        "active": active,
        "closed": closed,
        "archived": False,
        "restricted": True,
        "enableOrderBook": True,
        "acceptingOrders": active and not closed,
        "orderPriceMinTickSize": float(tick),
        "orderMinSize": min_size,
        "questionID": _hex32(f"question:{slug}"),
        "negRisk": neg_risk_market_id is not None,
        "negRiskOther": neg_risk_other,
        "feesEnabled": fee_rate is not None,
        "feeType": "demo_fees" if fee_rate is not None else None,
    }
    if neg_risk_market_id is not None:
        item["negRiskMarketID"] = neg_risk_market_id
    if fee_rate is not None:
        item["feeSchedule"] = {"exponent": 1, "rate": float(fee_rate), "takerOnly": True, "rebateRate": 0.25}
    if event is not None:
        item["events"] = [dict(event)]
    if extra:
        item.update(extra)
    return item


def make_event(
    slug: str,
    title: str,
    *,
    gamma_id: int,
    neg_risk: bool,
    augmented: bool = False,
    end_date: str = "2026-12-31T23:59:59Z",
    active: bool = True,
    closed: bool = False,
) -> dict[str, Any]:
    """An event summary as Gamma embeds it in ``/markets`` items (``events[0]``)."""
    event: dict[str, Any] = {
        "id": str(gamma_id),
        "ticker": slug,
        "slug": slug,
        "title": title,
        "endDate": end_date,
        "active": active,
        "closed": closed,
        "archived": False,
        "negRisk": neg_risk,
        "enableNegRisk": neg_risk,
        "negRiskAugmented": augmented,
    }
    if neg_risk:
        # Real group ids are 32 bytes whose last byte is 00 (question ids count up from it).
        event["negRiskMarketID"] = _hex32(f"negrisk:{slug}")[:-2] + "00"
    return event


def synthetic_markets(count: int, *, prefix: str = "synthetic") -> list[dict[str, Any]]:
    """``count`` distinct binary markets (for paging tests and benchmarks)."""
    return [
        make_market(f"{prefix}-market-{i:05d}", f"Synthetic market {i}?", gamma_id=100_000 + i, fee_rate="0.05")
        for i in range(count)
    ]


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "429" | "500" | "delay" | "garbage" | "ok"
    retry_after: float | None = None
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestLog:
    method: str
    path: str
    params: dict[str, list[str]]
    status: int
    at: float = 0.0
    """``time.monotonic()`` when the request arrived (rate-limit tests)."""


_multi = multi
_PATHS = ("/markets", "/markets/keyset", "/events")


def _bool_param(params: Mapping[str, list[str]], name: str) -> bool | None:
    values = params.get(name)
    if not values:
        return None
    text = values[-1].strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"{name} must be true or false")
    return text == "true"


def _int_param(params: Mapping[str, list[str]], name: str, default: int) -> int:
    values = params.get(name)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None


def _fault_answer(fault: Fault) -> HttpResponse | None:
    """The answer a fault puts in place of the real one (None: the real one, held back)."""
    if fault.kind == "429":
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        return HttpResponse.error(429, "Too Many Requests", headers)
    if fault.kind == "500":
        return HttpResponse.error(500, "internal error (injected)")
    if fault.kind == "garbage":
        return HttpResponse(200, b"<html>not json</html>", {"Content-Type": "application/json"})
    return None


class MockGammaServer:
    """Serve Gamma market items over real HTTP on loopback.

    ``markets`` is a list of ``/markets`` items or a file (see :func:`load_markets_file`);
    by default the project's own ``fixtures/gamma/markets.json``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        markets: Sequence[object] | Path | str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        if markets is None:
            markets = DEFAULT_MARKETS_FILE
        if isinstance(markets, str | Path):
            self.markets: list[object] = list(load_markets_file(Path(markets)))
        else:
            self.markets = list(markets)
        self.requests: list[RequestLog] = []
        self.keyset = KeysetOptions()
        """How ``/markets/keyset`` ends a scan, and whether it ignores the cursor (tests)."""
        self._faults: deque[Fault] = deque()
        self._http: MiniHttpServer | None = None
        self._stopped = asyncio.Event()

    # -- fault injection ------------------------------------------------------------------
    def fail_429(self, count: int = 1, retry_after: float | None = 1.0) -> None:
        """The next ``count`` requests get 429 with ``Retry-After`` (seconds; None = no header)."""
        self._faults.extend(Fault("429", retry_after=retry_after) for _ in range(count))

    def answer_normally(self, count: int = 1) -> None:
        """The next ``count`` requests are answered as usual (faults queued after them wait their turn)."""
        self._faults.extend(Fault("ok") for _ in range(count))

    def fail_500(self, count: int = 1) -> None:
        self._faults.extend(Fault("500") for _ in range(count))

    def delay(self, count: int = 1, delay_s: float = 5.0) -> None:
        """The next ``count`` responses are held back ``delay_s`` (longer than a client timeout)."""
        self._faults.extend(Fault("delay", delay_s=delay_s) for _ in range(count))

    def garbage(self, count: int = 1) -> None:
        """The next ``count`` responses are 200 with a body that is not JSON."""
        self._faults.extend(Fault("garbage") for _ in range(count))

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("server not started")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        if self._http is None:
            self._stopped = asyncio.Event()
            http = MiniHttpServer(self._handle, self.host, self.port)
            await http.start()
            self._http, self.port = http, http.port
            log.info("mock gamma: serving %d markets at %s", len(self.markets), self.url)
        return self.url

    async def stop(self) -> None:
        self._stopped.set()  # answers held back by a delay fault go out now
        http, self._http = self._http, None
        if http is not None:
            await http.stop()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> MockGammaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- HTTP -----------------------------------------------------------------------------
    async def _handle(self, req: HttpRequest) -> HttpResponse:
        arrived = time.monotonic()
        params = parse_qs(urlsplit(req.target).query, keep_blank_values=False)
        response, delay_s = self._route(req.method, req.path.rstrip("/") or "/", params)
        self.requests.append(RequestLog(req.method, req.path, params, response.status, arrived))
        if delay_s:
            await sleep_until(self._stopped, delay_s)
        return response

    def _route(self, method: str, path: str, params: Mapping[str, list[str]]) -> tuple[HttpResponse, float]:
        """The answer to a request and how long to hold it back."""
        if method not in ("GET", "HEAD"):
            return HttpResponse.error(405, f"method {method} not allowed"), 0.0
        if path not in _PATHS:
            return HttpResponse.error(404, f"no route {path}"), 0.0
        fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            injected = _fault_answer(fault)
            if injected is not None:
                return injected, 0.0
        return self._answer(path, params), fault.delay_s if fault is not None else 0.0

    def _answer(self, path: str, params: Mapping[str, list[str]]) -> HttpResponse:
        if len(_multi(params, "condition_ids")) > GAMMA_MAX_LIMIT:
            return HttpResponse.error(422, f"at most {GAMMA_MAX_LIMIT} condition_ids per request")
        if path == "/markets/keyset":
            return self._keyset(params)
        try:
            limit = max(0, min(GAMMA_MAX_LIMIT, _int_param(params, "limit", GAMMA_MAX_LIMIT)))
            offset = _int_param(params, "offset", 0)
            if not 0 <= offset <= GAMMA_MAX_OFFSET:
                return HttpResponse.error(422, f"offset must be between 0 and {GAMMA_MAX_OFFSET}")
            active = _bool_param(params, "active")
            closed = _bool_param(params, "closed")
        except ValueError as exc:
            return HttpResponse.error(422, str(exc))
        if path == "/markets":
            rows = self._filter_markets(params, active, closed)
        else:
            slugs, ids = set(_multi(params, "slug")), set(_multi(params, "id"))
            rows = [
                ev
                for ev in events_from_markets(self.markets)
                if (active is None or ev.get("active") is active)
                and (closed is None or ev.get("closed") is closed)
                and (not slugs or ev.get("slug") in slugs)
                and (not ids or str(ev.get("id")) in ids)
            ]
        return HttpResponse.json(rows[offset : offset + limit])

    def _keyset(self, params: Mapping[str, list[str]]) -> HttpResponse:
        if "offset" in params:
            return HttpResponse.error(422, "offset is not accepted by keyset pagination: pass after_cursor")
        try:
            limit = _int_param(params, "limit", GAMMA_MAX_LIMIT)
            active = _bool_param(params, "active")
            closed = _bool_param(params, "closed")
            cursors = params.get("after_cursor")
            body = keyset_page(
                self.markets,
                self._matcher(params, active, closed),
                limit=limit,
                after_cursor=cursors[-1] if cursors else None,
                options=self.keyset,
            )
        except (ValueError, CursorError) as exc:
            return HttpResponse.error(422, str(exc))
        return HttpResponse.json(body)

    def _filter_markets(
        self, params: Mapping[str, list[str]], active: bool | None, closed: bool | None
    ) -> list[object]:
        return list(filter(self._matcher(params, active, closed), self.markets))

    @staticmethod
    def _matcher(params: Mapping[str, list[str]], active: bool | None, closed: bool | None) -> Callable[[object], bool]:
        cids = {c.lower() for c in _multi(params, "condition_ids")}
        slugs = set(_multi(params, "slug"))
        ids = set(_multi(params, "id"))

        def matches(item: object) -> bool:
            if not isinstance(item, Mapping):
                return True  # served as is: bad input must reach the client's parser
            return (
                (active is None or item.get("active") is active)
                and (closed is None or item.get("closed") is closed)
                and (not cids or str(item.get("conditionId", "")).lower() in cids)
                and (not slugs or item.get("slug") in slugs)
                and (not ids or str(item.get("id")) in ids)
            )

        return matches
