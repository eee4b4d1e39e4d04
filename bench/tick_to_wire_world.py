"""bench/tick_to_wire.py's world: the books and markets, the local wire server, the store, the timers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from py_clob_client_v2.clob_types import ApiCreds
from py_clob_client_v2.config import get_contract_config

from core.execution.relayers.clob_signing import domain_separator, struct_order_hash
from core.execution.risk_gate import RiskLimits
from core.feed.book import Book
from core.strategies.dutch import DutchConfig, DutchOpportunity, evaluate_binary, evaluate_event
from core.types import BookStatus, MarketInfo, Side, TokenInfo

# The public Hardhat/Anvil test key #0: never funded on Polygon.
BENCH_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
BENCH_CREDS = ("bench-api-key", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=", "bench-pass")
LIMITS = replace(
    RiskLimits.configured(),
    max_order_notional=Decimal("1000000"),
    max_market_notional=Decimal("1000000000"),
    max_event_notional=Decimal("1000000000"),
    max_total_exposure=Decimal("1000000000"),
    daily_loss_limit=Decimal("1000000000"),
    orders_per_s=1e9,
    order_burst=10**9,
)
DEPTH = 5


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Stages:
    """Per iteration: the tick-to-wire wall time and its split; optionally the process CPU time
    (every thread: the loop, the signing worker, aiosqlite's) in total and per stage."""

    def __init__(self, names: list[str]) -> None:
        self.columns: dict[str, list[float]] = {n: [] for n in names}
        self.cpu_columns: dict[str, list[float]] = {n: [] for n in names}
        self.totals: list[float] = []
        self.cpu_totals: list[float] = []
        self.note = ""

    def add(self, total: float, split: list[float], cpu: list[float] | None = None) -> None:
        self.totals.append(total)
        for values, v in zip(self.columns.values(), split, strict=True):
            values.append(v)
        if cpu is not None:
            self.cpu_totals.append(sum(cpu))
            for values, v in zip(self.cpu_columns.values(), cpu, strict=True):
                values.append(v)


class World:
    """One Dutch group's markets and books. Without the trigger the asks add up to just too much
    (no opportunity); the trigger puts a cheaper ask level on the first leg, which opens one."""

    def __init__(self, kind: str, legs: int, server: Any) -> None:
        self.kind = kind
        self.legs = legs
        self.warmup = 30
        self.cfg = DutchConfig(safety_margin_usdc=Decimal("0.005"), slippage_ticks=1)
        self.api_creds = ApiCreds(*BENCH_CREDS)
        contracts = get_contract_config(137)
        if kind == "binary":
            self.tick = Decimal("0.01")
            market = MarketInfo(
                "0x" + "b1" * 32,
                "binary?",
                "bench-binary",
                (TokenInfo("1" + "3" * 76, "Yes"), TokenInfo("2" + "3" * 76, "No")),
                tick_size=self.tick,
            )
            self.markets = [market]
            tops = [Decimal("0.50"), Decimal("0.49")]  # worst 0.99 + 2 ticks + margin > 1
            self.trigger_price = Decimal("0.45")  # on the first leg: 0.94 + 0.02 + 0.005 < 1
            self.tokens = [t.token_id for t in market.tokens]
            self.exchange_domain = domain_separator(contracts.exchange_v2, 137)
        else:
            self.tick = Decimal("0.001")
            self.markets = [
                MarketInfo(
                    f"0x{i + 1:064x}",
                    f"outcome {i}?",
                    f"bench-outcome-{i}",
                    (TokenInfo(f"{i + 1:02d}" + "7" * 75, "Yes"), TokenInfo(f"{i + 1:02d}" + "7" * 74 + "0", "No")),
                    tick_size=self.tick,
                    neg_risk=True,
                    neg_risk_market_id="0x" + "ab" * 32,
                )
                for i in range(legs)
            ]
            # 6 x 0.099 + 4 x 0.098 = 0.986: worst 0.986 + 10 ticks + 0.005 > 1
            tops = [Decimal("0.099") if i < 6 else Decimal("0.098") for i in range(legs)]
            self.trigger_price = tops[0] - 10 * self.tick
            self.tokens = [m.tokens[0].token_id for m in self.markets]
            self.exchange_domain = domain_separator(contracts.neg_risk_exchange_v2, 137)
        self.tops = tops
        self.by_id = {m.condition_id: m for m in self.markets}
        self.books: dict[str, Book] = {}
        self.reset()

    def reset(self) -> None:
        """Fresh books (in place: the engine keeps ``self.books.get``)."""
        self.books.clear()
        for token, top in zip(self.tokens, self.tops, strict=True):
            book = Book(token, self.tick)
            asks = [(top + self.tick * k, Decimal(200 + 50 * k)) for k in range(DEPTH)]
            # bids below the trigger level, so the trigger never crosses the book
            gap = self.tops[0] - self.trigger_price + self.tick
            bids = [(top - gap - self.tick * k, Decimal(300)) for k in range(DEPTH) if top - gap - self.tick * k > 0]
            book.apply_snapshot(bids, asks, ts=0)
            assert book.status is BookStatus.OK
            self.books[token] = book
        for m in self.markets:  # the NO books of neg-risk members are not legs; keep them valid
            for t in m.tokens:
                if t.token_id not in self.books:
                    book = Book(t.token_id, self.tick)
                    book.apply_snapshot([(Decimal("0.5"), Decimal(10))], [(Decimal("0.9"), Decimal(10))], ts=0)
                    self.books[t.token_id] = book

    def trigger(self, i: int) -> DutchOpportunity | None:
        """The feed event (one ask level appears on the first leg) and the strategy's evaluation."""
        self.books[self.tokens[0]].apply_level(Side.SELL, self.trigger_price, Decimal(40 + i % 20), i)
        if self.kind == "binary":
            return evaluate_binary(self.markets[0], self.books, self.cfg, ts=i)
        return evaluate_event(self.markets, self.books, self.cfg, ts=i)

    def untrigger(self, i: int) -> None:
        self.books[self.tokens[0]].apply_level(Side.SELL, self.trigger_price, Decimal(0), i)

    def instrument(self, gate: Any, relayer: Any, store: Any) -> Timers:
        return Timers(gate, relayer, store)


class Timers:
    """Wraps the gate's check, the signer, the store's intent write and the HTTP client's request
    (instance attributes) and records when each ran, to split one tick-to-wire interval."""

    def __init__(self, gate: Any, relayer: Any, store: Any) -> None:
        self.spans: dict[str, list[tuple[float, float]]] = {"risk": [], "signing": [], "write-ahead": []}
        self.post_start: list[float] = []
        self._lock = threading.Lock()
        gate.check_many = self._async(gate.check_many, "risk")
        gate.check = self._async(gate.check, "risk")
        store.save_orders = self._async(store.save_orders, "write-ahead")
        store.save_order = self._async(store.save_order, "write-ahead")
        signer = relayer.signer
        signer.sign = self._sync(signer.sign, "signing")
        signer.sign_batch = self._sync(signer.sign_batch, "signing")
        signer.prepare_batch = self._sync(signer.prepare_batch, "signing")  # the hashes, on the loop
        signer.complete_batch = self._sync(signer.complete_batch, "signing")  # the signatures, in a worker
        http = relayer._http
        request = http.request

        async def timed_request(method: str, path: str, **kw: Any) -> object:
            if method == "POST" and path in ("/orders", "/order"):
                self.post_start.append(time.perf_counter())
            return await request(method, path, **kw)

        http.request = timed_request

    def _async(self, fn: Callable[..., Awaitable[Any]], name: str) -> Callable[..., Awaitable[Any]]:
        async def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*a, **kw)
            finally:
                self.spans[name].append((t0, time.perf_counter()))

        return timed

    def _sync(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                with self._lock:
                    self.spans[name].append((t0, time.perf_counter()))

        return timed

    def reset(self) -> None:
        for v in self.spans.values():
            v.clear()
        self.post_start.clear()

    def split(self, t_wire: float) -> list[float]:
        """risk and write-ahead: summed time; signing: first start to last end (the hashes on the
        loop, then the signatures in a worker thread); post: the last POST's start to the wire. Only
        what began before the wire. The signatures are made while the write-ahead runs: the time the
        two overlap is counted as signing, not as the write's."""
        out = []
        for name in ("risk", "signing", "write-ahead"):
            spans = [(a, min(b, t_wire)) for a, b in self.spans[name] if a < t_wire]
            if name == "signing":
                out.append(max(b for _, b in spans) - min(a for a, _ in spans) if spans else 0.0)
            else:
                out.append(sum(b - a for a, b in spans))
        signing = [(a, min(b, t_wire)) for a, b in self.spans["signing"] if a < t_wire]
        if signing:  # the per-leg spans lie inside the batch's: their union is first start to last end
            a, b = min(a for a, _ in signing), max(b for _, b in signing)
            out[2] -= sum(max(0.0, min(b, y) - max(a, x)) for x, y in self.spans["write-ahead"] if x < t_wire)
        posts = [p for p in self.post_start if p < t_wire]
        out.append(t_wire - posts[-1] if posts else 0.0)
        return out


async def make_store(path: Path, synchronous: str) -> tuple[Any, str, Callable[[], Awaitable[None]]]:
    """A migrated SQLite file store (WAL, as core.store.db sets it up); ``synchronous`` overrides
    the PRAGMA. Returns the store, the synchronous level in effect, and its closer."""
    from sqlalchemy import event

    from core.execution.store import SqlExecutionStore
    from core.store.db import create_engine, session_factory
    from core.store.migrate import upgrade_engine

    db = create_engine(f"sqlite:///{path}")
    if synchronous != "default":

        @event.listens_for(db.sync_engine, "connect")
        def _sync(dbapi_connection: Any, _record: Any) -> None:
            cur = dbapi_connection.cursor()
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.close()

    await upgrade_engine(db)
    async with db.connect() as conn:
        level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
        journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    in_effect = f"{names.get(int(level or 0), level)} (journal {journal})"

    async def close() -> None:
        await db.dispose()

    return SqlExecutionStore(session_factory(db)), in_effect, close


_FLOOR_COLUMNS: tuple[str, ...] = ("client_order_id", "market", "token_id", "side", "price", "size", "order_type")
_FLOOR_COLUMNS += ("post_only", "status", "mode", "group_id", "reason", "filled_size", "created_at", "updated_at")


async def write_ahead_floor(path: Path, legs: int, n: int, synchronous: str) -> tuple[list[float], list[float]]:
    """The same N-row intent write with the sqlite3 driver alone (one transaction, one worker-thread
    hop, no ORM) on the same WAL file: what the write-ahead could cost. (wall, process CPU) samples."""
    import sqlite3

    sql = (
        f"INSERT INTO orders ({', '.join(_FLOOR_COLUMNS)}) VALUES ({', '.join('?' * len(_FLOOR_COLUMNS))}) "
        "ON CONFLICT (client_order_id) DO NOTHING"
    )
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'default' else synchronous}")

    def write(rows: list[tuple[object, ...]]) -> None:
        con.execute("BEGIN")
        con.executemany(sql, rows)
        con.execute("COMMIT")

    wall: list[float] = []
    cpu: list[float] = []
    stamp = "2026-12-05 00:00:00.000000"

    def fixed(i: int) -> tuple[object, ...]:
        return ("new", "live", f"g{i}", "bench", "0", stamp, stamp)

    try:
        for i in range(n):
            rows: list[tuple[object, ...]] = [
                (f"floor-{i}-{k}", "0x" + "ab" * 32, "7" * 77, "BUY", "0.099", "40", "FOK", False, *fixed(i))
                for k in range(legs)
            ]
            c0, t0 = time.process_time(), time.perf_counter()
            await asyncio.to_thread(write, rows)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    finally:
        con.close()
    return wall, cpu


class WireServer:
    """A local HTTP/1.1 server that stamps the arrival of each request's last byte and answers
    ``POST /orders`` with one matched entry per order (``orderID`` = the order's hash)."""

    def __init__(self) -> None:
        self.port = 0
        self.domain = b""
        self._server: asyncio.Server | None = None
        self._counts: Counter[str] = Counter()
        self._waiter: asyncio.Future[float] | None = None
        self.arrival_cpu = 0.0
        """Process CPU time (all threads) when the awaited request's last byte arrived."""
        self._remaining = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def count(self, path: str) -> int:
        return self._counts[path]

    def expect(self, last_of: int = 1) -> asyncio.Future[float]:
        """A future for the arrival time of the next ``POST /orders`` (or of the ``last_of``-th
        ``POST /order``, for a path that posts legs one by one)."""
        self._waiter = asyncio.get_running_loop().create_future()
        self._remaining = last_of
        return self._waiter

    def handle(self, method: str, path: str, body: bytes, arrived: float, arrived_cpu: float) -> bytes:
        path = path.split("?", 1)[0]
        self._counts[path] += 1
        waiter = self._waiter
        if method == "POST" and path == "/orders":
            payload: object = [self._matched(o) for o in json.loads(body)]
            if waiter is not None and not waiter.done():
                self.arrival_cpu = arrived_cpu
                waiter.set_result(arrived)
        elif method == "POST" and path == "/order":
            payload = self._matched(json.loads(body))
            self._remaining -= 1
            if waiter is not None and not waiter.done() and self._remaining <= 0:
                self.arrival_cpu = arrived_cpu
                waiter.set_result(arrived)
        elif method == "GET" and path.startswith("/data/"):
            payload = {"data": [], "next_cursor": "LTE=", "limit": 500, "count": 0}
        else:
            payload = {}
        data = json.dumps(payload).encode()
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(data)).encode()
            + b"\r\n\r\n"
            + data
        )

    def _matched(self, body: dict[str, Any]) -> dict[str, object]:
        order = body["order"]
        return {
            "success": True,
            "errorMsg": "",
            "orderID": struct_order_hash(order, self.domain),
            "status": "matched",
            "makingAmount": order["makerAmount"],
            "takingAmount": order["takerAmount"],
            "transactionsHashes": [],
            "tradeIDs": [],
        }

    @staticmethod
    def http_request(method: str, path: str, body: bytes, headers: dict[str, Any]) -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"content-length: {len(body)}\r\n\r\n"
        return head.encode() + body

    @staticmethod
    async def read_answer(reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return await reader.readexactly(length)


class _Conn(asyncio.Protocol):
    def __init__(self, server: WireServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        arrived, arrived_cpu = time.perf_counter(), time.process_time()
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            method, path, _ = head[0].split(" ", 2)
            assert self.transport is not None
            self.transport.write(self.server.handle(method, path, body, arrived, arrived_cpu))
