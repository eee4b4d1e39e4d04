"""A local Gamma double: a real HTTP/1.1 server serving ``GET /markets`` and ``GET /events``.

Built on ``asyncio.start_server`` (no web framework is installed) with keep-alive, so httpx
talks to it exactly as it talks to Gamma. Filters follow Gamma: ``limit`` (capped at 100),
``offset`` (refused above 10,000), ``active``, ``closed``, ``condition_ids`` and ``slug``
(repeated or comma-separated), ``id``. Fault injection for tests: the next N responses can
be 429 with ``Retry-After``, 500, delayed past the client's timeout, or not JSON.

Used by ``polybot mock-gamma``, the demo and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

DEFAULT_MARKETS_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "gamma" / "markets.json"
MAX_LIMIT = 100
MAX_OFFSET = 10_000
_MAX_REQUEST_LINE = 8192
_MAX_HEADERS = 100
_READ_TIMEOUT_S = 30.0


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


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "429" | "500" | "delay" | "garbage"
    retry_after: float | None = None
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestLog:
    method: str
    path: str
    params: dict[str, list[str]]
    status: int


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error"}  # fmt: skip


def _json_body(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _multi(params: Mapping[str, list[str]], name: str) -> list[str]:
    values: list[str] = []
    for raw in params.get(name, []):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values


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


class MockGammaServer:
    """Serve Gamma market items over real HTTP on loopback.

    ``markets`` is a list of ``/markets`` items or a file (see :func:`load_markets_file`);
    by default the project's own ``fixtures/gamma/markets.json``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        markets: Sequence[Any] | Path | str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        if markets is None:
            markets = DEFAULT_MARKETS_FILE
        if isinstance(markets, str | Path):
            self.markets: list[Any] = load_markets_file(Path(markets))
        else:
            self.markets = list(markets)
        self.requests: list[RequestLog] = []
        self._faults: deque[Fault] = deque()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    # -- fault injection ------------------------------------------------------------------
    def fail_429(self, count: int = 1, retry_after: float | None = 1.0) -> None:
        """The next ``count`` requests get 429 with ``Retry-After`` (seconds; None = no header)."""
        self._faults.extend(Fault("429", retry_after=retry_after) for _ in range(count))

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
        if self._server is None:
            raise RuntimeError("server not started")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port, limit=_MAX_REQUEST_LINE * 2)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("mock gamma: serving %d markets at %s", len(self.markets), self.url)
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            if self._conns:
                await asyncio.gather(*self._conns, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.stop()

    async def __aenter__(self) -> MockGammaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- HTTP -----------------------------------------------------------------------------
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Handle one request; returns whether the connection stays open."""
        line = await asyncio.wait_for(reader.readline(), _READ_TIMEOUT_S)
        if not line:
            return False
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        except ValueError:
            await self._write(writer, _Response(400, _json_body({"error": "bad request line"})), keep_alive=False)
            return False
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            raw = await asyncio.wait_for(reader.readline(), _READ_TIMEOUT_S)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            await self._write(writer, _Response(400, _json_body({"error": "too many headers"})), keep_alive=False)
            return False
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        keep_alive = headers.get("connection", "").lower() != "close" and version.upper() == "HTTP/1.1"

        split = urlsplit(target)
        params = parse_qs(split.query, keep_blank_values=False)
        response = self._route(method.upper(), split.path.rstrip("/") or "/", params)
        self.requests.append(RequestLog(method.upper(), split.path, params, response.status))
        if response.delay_s:
            await asyncio.sleep(response.delay_s)
        await self._write(writer, response, keep_alive=keep_alive, head=method.upper() == "HEAD")
        return keep_alive

    async def _write(
        self, writer: asyncio.StreamWriter, resp: _Response, *, keep_alive: bool, head: bool = False
    ) -> None:
        if writer.is_closing():
            return
        lines = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}",
            "Content-Type: application/json",
            f"Content-Length: {len(resp.body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            *(f"{k}: {v}" for k, v in resp.headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else resp.body))
        await writer.drain()

    def _route(self, method: str, path: str, params: Mapping[str, list[str]], *, faults: bool = True) -> _Response:
        if method not in ("GET", "HEAD"):
            return _Response(405, _json_body({"error": f"method {method} not allowed"}))
        if path not in ("/markets", "/events"):
            return _Response(404, _json_body({"error": f"no route {path}"}))
        if faults and self._faults:
            fault = self._faults.popleft()
            if fault.kind == "429":
                headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                return _Response(429, _json_body({"error": "Too Many Requests"}), headers)
            if fault.kind == "500":
                return _Response(500, _json_body({"error": "internal error (injected)"}))
            if fault.kind == "garbage":
                return _Response(200, b"<html>not json</html>")
            delayed = self._route(method, path, params, faults=False)
            delayed.delay_s = fault.delay_s
            return delayed
        try:
            limit = max(0, min(MAX_LIMIT, _int_param(params, "limit", MAX_LIMIT)))
            offset = _int_param(params, "offset", 0)
            if not 0 <= offset <= MAX_OFFSET:
                return _Response(422, _json_body({"error": f"offset must be between 0 and {MAX_OFFSET}"}))
            active = _bool_param(params, "active")
            closed = _bool_param(params, "closed")
        except ValueError as exc:
            return _Response(422, _json_body({"error": str(exc)}))
        if path == "/markets":
            rows = self._filter_markets(params, active, closed)
        else:
            rows = [
                ev
                for ev in events_from_markets(self.markets)
                if (active is None or ev.get("active") is active) and (closed is None or ev.get("closed") is closed)
            ]
        return _Response(200, _json_body(rows[offset : offset + limit]))

    def _filter_markets(self, params: Mapping[str, list[str]], active: bool | None, closed: bool | None) -> list[Any]:
        cids = {c.lower() for c in _multi(params, "condition_ids")}
        slugs = set(_multi(params, "slug"))
        ids = set(_multi(params, "id"))
        out = []
        for item in self.markets:
            if not isinstance(item, Mapping):
                out.append(item)  # served as is: bad input must reach the client's parser
                continue
            if active is not None and item.get("active") is not active:
                continue
            if closed is not None and item.get("closed") is not closed:
                continue
            if cids and str(item.get("conditionId", "")).lower() not in cids:
                continue
            if slugs and item.get("slug") not in slugs:
                continue
            if ids and str(item.get("id")) not in ids:
                continue
            out.append(item)
        return out
