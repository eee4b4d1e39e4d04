"""bench/tick_to_wire.py stays runnable and measures what it says: each group is one POST /orders
on the local socket, its orders signed for the right exchange, the write-ahead on a WAL file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from bench.tick_to_wire import run_components, run_engine
from bench.tick_to_wire_world import BENCH_KEY, WireServer, World, make_store
from core.execution.relayers.clob_signing import OrderSigner
from core.sim.mock_clob_verify import recover_order_signer


class RecordingServer(WireServer):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[dict[str, object]]] = []

    def handle(self, method: str, path: str, body: bytes, arrived: float, arrived_cpu: float) -> bytes:
        if method == "POST" and path == "/orders":
            self.batches.append(json.loads(body))
        return super().handle(method, path, body, arrived, arrived_cpu)


@pytest.mark.parametrize(("kind", "legs"), [("binary", 2), ("neg_risk", 10)])
@pytest.mark.parametrize("official", [False, True])
async def test_components_pipeline_posts_one_signed_batch_per_group(
    tmp_path: Path, kind: str, legs: int, official: bool
) -> None:
    server = RecordingServer()
    await server.start()
    try:
        world = World(kind, legs, server)
        world.warmup = 2
        server.domain = world.exchange_domain
        store, sync, close = await make_store(tmp_path / "bench.db", "default")
        try:
            stages = await run_components(world, store, server, 4, official)
        finally:
            await close()
    finally:
        await server.close()
    assert "wal" in sync
    assert len(stages.totals) == 4 and all(t > 0 for t in stages.totals)
    assert len(server.batches) == 6 and server.count("/order") == 0
    signer = OrderSigner(BENCH_KEY)
    exchange = signer.exchange_for(kind == "neg_risk")
    for batch in server.batches:
        assert len(batch) == legs
        for body in batch:
            order = body["order"]
            assert isinstance(order, dict)
            assert recover_order_signer(order, exchange, 137) == Account.from_key(BENCH_KEY).address


async def test_engine_pipeline_is_one_post_per_group(tmp_path: Path) -> None:
    server = RecordingServer()
    await server.start()
    try:
        world = World("neg_risk", 10, server)
        world.warmup = 1
        server.domain = world.exchange_domain
        store, _, close = await make_store(tmp_path / "engine.db", "default")
        try:
            stages = await run_engine(world, store, server, 3)
        finally:
            await close()
    finally:
        await server.close()
    if isinstance(stages, str):
        pytest.skip(f"engine batch path not there yet: {stages}")
    assert len(stages.totals) == 3
    assert [len(b) for b in server.batches] == [10] * 4 and server.count("/order") == 0
