"""Local double of a Polygon JSON-RPC node, for the settlement layer's transaction manager.

JSON-RPC 2.0 over HTTP POST (single requests and batches) on :class:`MiniHttpServer`. It decodes
every raw transaction itself (eth-account: signer recovery, chain id), keeps a geth-like pool
(:mod:`core.sim.mock_chain_state`: nonce too low, gaps held, already known, +10% replacement,
tip floor, base fee), and runs calls against the contracts Polybot settles through
(:mod:`core.sim.mock_chain_exec`: pUSD, ConditionalTokens, the two collateral adapters' merge
and redeem) on a :class:`~core.sim.mock_clob_state.Ledger`. Given the CLOB double's ledger
(:meth:`MockChain.beside`), a merge or redeem moves the balances ``GET /balance-allowance``
answers.

Every executable transaction is mined at once into its own block. Blocks on top (confirmations)
come from :meth:`MockChain.mine`, from ``blocks_per_receipt_poll`` (that many blocks per
``eth_getTransactionReceipt``: a client waiting for confirmations makes progress alone) and from
``block_interval_s`` (a timer). Faults: :attr:`MockChain.faults` (:mod:`core.sim.mock_chain_faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from eth_utils.address import to_checksum_address

from core.sim.http_double import DROP, HttpRequest, HttpResponse, MiniHttpServer, sleep_until
from core.sim.mock_chain_abi import CTF, PUSD
from core.sim.mock_chain_exec import ChainMarket, ChainWorld, condition_key
from core.sim.mock_chain_faults import RATE_LIMIT, TIMEOUT, ChainFaults
from core.sim.mock_chain_rpc import ChainRpc
from core.sim.mock_chain_state import GWEI, Block, ChainState
from core.sim.mock_chain_tx import MinedTx, PendingTx, RpcError
from core.sim.mock_clob_state import Ledger, MockMarket

log = logging.getLogger(__name__)
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
LIMIT_EXCEEDED = -32005


class MockChain:
    def __init__(
        self,
        ledger: Ledger | None = None,
        chain_id: int = 137,
        markets: Iterable[ChainMarket | MockMarket] | None = None,
        *,
        blocks_per_receipt_poll: int = 0,
        block_interval_s: float | None = None,
        default_approved: bool = True,
        base_fee: int = 30 * GWEI,
        min_tip: int = 25 * GWEI,
        native_default: int = 10**21,
    ) -> None:
        self.ledger = ledger if ledger is not None else Ledger(Decimal(0))
        self.world = ChainWorld(self.ledger, default_approved=default_approved, native_default=native_default)
        self.state = ChainState(self.world, chain_id, base_fee=base_fee, min_tip=min_tip)
        self.faults = ChainFaults()
        self.rpc = ChainRpc(self.state, self.faults, blocks_per_receipt_poll=blocks_per_receipt_poll)
        self.block_interval_s = block_interval_s
        self.method_counts: Counter[str] = Counter()
        self.http_requests = 0
        self._http: MiniHttpServer | None = None
        self._host = "127.0.0.1"
        self._stopped = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        for market in markets or ():
            self._add(market)

    @classmethod
    def beside(cls, clob: Any, **kwargs: Any) -> MockChain:
        """A chain sharing a :class:`~core.sim.mock_clob.MockClobServer`'s ledger, chain id and markets."""
        kwargs.setdefault("chain_id", clob.chain_id)
        return cls(clob.ledger, markets=list(clob.markets.values()), **kwargs)

    # ------------------------------------------------------------------ markets and state

    def _add(self, market: ChainMarket | MockMarket) -> None:
        if isinstance(market, MockMarket):
            self.add_clob_markets([market])
        else:
            self.world.markets[condition_key(market.condition_id)] = market

    def add_market(self, condition_id: str, yes_token: str, no_token: str, neg_risk: bool = False) -> ChainMarket:
        market = ChainMarket(condition_key(condition_id), str(yes_token), str(no_token), neg_risk)
        self.world.markets[market.condition_id] = market
        return market

    def add_clob_markets(self, markets: Iterable[MockMarket]) -> None:
        """Register the CLOB double's binary markets (first token YES, second NO)."""
        for m in markets:
            if len(m.tokens) == 2:
                self.add_market(m.condition_id, m.tokens[0][0], m.tokens[1][0], m.neg_risk)

    def resolve(self, condition_id: str, winning_token: str) -> None:
        market = self.world.markets.get(condition_key(condition_id))
        if market is None:
            raise KeyError(f"unknown condition {condition_id}")
        if str(winning_token) not in (market.yes_token, market.no_token):
            raise ValueError(f"{winning_token} is not a token of {condition_id}")
        market.winner = str(winning_token)

    @property
    def markets(self) -> dict[str, ChainMarket]:
        return self.world.markets

    def set_approval(self, owner: str, operator: str, approved: bool) -> None:
        """ConditionalTokens ``isApprovedForAll(owner, operator)`` (default: ``default_approved``)."""
        self.world.operators[(to_checksum_address(owner), to_checksum_address(operator))] = approved

    def set_allowance(self, owner: str, spender: str, units: int) -> None:
        """pUSD ``allowance(owner, spender)`` in 10^-6 units."""
        self.world.allowances[(to_checksum_address(owner), to_checksum_address(spender))] = units

    def set_native(self, address: str, wei: int) -> None:
        """The POL balance that pays gas (default ``native_default``)."""
        self.world.native[to_checksum_address(address)] = wei

    def set_base_fee(self, wei: int) -> None:
        """Change the base fee of the blocks to come (a transaction whose fee cap now reaches it is mined)."""
        self.state.set_base_fee(wei)

    def mine(self, n: int = 1) -> Block:
        """Add ``n`` empty blocks (confirmations for what is mined)."""
        return self.state.mine(n)

    def release(self) -> int:
        """Let every transaction held by ``faults.stick_next`` be mined; returns how many were held."""
        return self.state.release()

    # ------------------------------------------------------------------ read by tests

    @property
    def chain_id(self) -> int:
        return self.state.chain_id

    @property
    def txs(self) -> dict[str, PendingTx | MinedTx]:
        return self.state.txs

    @property
    def sent_raw(self) -> int:
        return self.rpc.sent_raw

    @property
    def receipt_polls(self) -> int:
        return self.rpc.receipt_polls

    @property
    def block_number(self) -> int:
        return self.state.head.number

    @property
    def blocks_per_receipt_poll(self) -> int:
        return self.rpc.blocks_per_receipt_poll

    @blocks_per_receipt_poll.setter
    def blocks_per_receipt_poll(self, n: int) -> None:
        self.rpc.blocks_per_receipt_poll = n

    def pending(self) -> list[PendingTx]:
        return list(self.state.pool.values())

    def nonce_of(self, address: str) -> int:
        return self.state.nonce_of(to_checksum_address(address))

    # ------------------------------------------------------------------ life-cycle

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the chain double is not started")
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._host = host
        self._stopped = asyncio.Event()
        self._http = MiniHttpServer(self._handle, host, port)
        await self._http.start()
        if self.block_interval_s:
            self._timer = asyncio.create_task(self._tick(self.block_interval_s))
        return self.url

    async def close(self) -> None:
        self._stopped.set()  # held (timeout-fault) answers end now
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        if self._http is not None:
            await self._http.stop()

    async def __aenter__(self) -> MockChain:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _tick(self, interval_s: float) -> None:
        while not self._stopped.is_set():
            await sleep_until(self._stopped, interval_s)
            if not self._stopped.is_set():
                self.state.mine(1)

    # ------------------------------------------------------------------ HTTP and JSON-RPC

    async def _handle(self, req: HttpRequest) -> HttpResponse:
        self.http_requests += 1
        fault = self.faults.take_request()
        if fault == RATE_LIMIT:
            retry = self.faults.retry_after_s
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": LIMIT_EXCEEDED, "message": "rate limit exceeded"}}
            return HttpResponse.json(body, 429, {"Retry-After": f"{retry:g}"})
        if fault == TIMEOUT:
            await sleep_until(self._stopped, self.faults.hold_s)
            return DROP
        if req.method != "POST":
            return HttpResponse.json(_error(None, RpcError(INVALID_REQUEST, "only POST is served")), 405)
        try:
            payload = req.json()
        except (ValueError, UnicodeDecodeError):
            return HttpResponse.json(_error(None, RpcError(PARSE_ERROR, "parse error")))
        if isinstance(payload, list):
            if not payload:
                return HttpResponse.json(_error(None, RpcError(INVALID_REQUEST, "empty batch")))
            return HttpResponse.json([self._one(item) for item in payload])
        return HttpResponse.json(self._one(payload))

    def _one(self, item: object) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            return _error(None, RpcError(INVALID_REQUEST, "invalid request"))
        rid = item.get("id")
        method = item["method"]
        params = item.get("params", [])
        if not isinstance(params, list):
            return _error(rid, RpcError(INVALID_REQUEST, "params must be an array"))
        self.method_counts[method] += 1
        try:
            result = self.rpc.dispatch(method, params)
        except RpcError as exc:
            return _error(rid, exc)
        except Exception as exc:  # a bug in the double answers an error, never kills the connection
            log.exception("mock chain: %s failed", method)
            return _error(rid, RpcError(INTERNAL_ERROR, f"mock chain internal error: {type(exc).__name__}"))
        return {"jsonrpc": "2.0", "id": rid, "result": result}


def _error(rid: object, exc: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": exc.as_json()}


__all__ = ["CTF", "PUSD", "ChainMarket", "MinedTx", "MockChain", "PendingTx", "RpcError"]
