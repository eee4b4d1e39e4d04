"""`polybot merge/redeem/balance` reach the running service through its database: the request is
claimed and run by the service's facade and its answer is one JSON document (paper mode here)."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal as D

from bot.offline import read_updates
from core.control.facade import Control
from core.control.requests import handle_pending_requests
from core.control.settlement import request_args
from polybot.cli.tools.tgbot_cmd import LocalOptions, local_session
from tests.conftest import PROJECT_FIXTURES
from tests.integration.test_bot_offline_runner import BINARY


async def test_cli_requests_are_run_by_the_service(markets_db: str) -> None:
    opts = LocalOptions(db_url=markets_db, market=BINARY, outcome="Yes")
    async with local_session(opts) as session:
        updates = [u for u in read_updates(PROJECT_FIXTURES / "updates" / "settlement.jsonl") if "message" in u][:3]
        await session.feed(updates)
        service = session.service

        async def serve() -> None:
            while True:
                await handle_pending_requests(service.sessions, service.control, handled_by="test-service")
                await asyncio.sleep(0.05)

        task = asyncio.create_task(serve())
        cli = Control.over_database(markets_db, request_wait_s=20)
        try:
            ask = cli.settlement_request
            balance = await ask("balance", request_args(), by="cli:test")
            assert balance["mode"] == "paper" and balance["mergeable"] == [[BINARY, "10.000000"]]
            plan = await ask("merge", request_args(BINARY, D(4), dry_run=True), by="cli:test")
            assert plan["ok"] and plan["dry_run"] and len(plan["lines"]) == 1  # type: ignore[arg-type]
            assert "CtfCollateralAdapter" in str(plan["lines"]) and "amount=4000000" in str(plan["lines"])
            assert service.engine.positions.get(service.registry.resolve(BINARY).tokens[0].token_id).shares == 10  # type: ignore[union-attr]
            done = await ask("merge", request_args(BINARY, D(4)), by="cli:test")
            assert done["ok"] and D(str(done["pusd"])) == 4 and done["mode"] == "paper"
            rows = done["rows"]
            assert isinstance(rows, list) and rows[0]["status"] == "booked"
            more = await ask("merge", request_args(BINARY, D(100)), by="cli:test")
            assert not more["ok"] and "100 sets asked, only 6" in str(more["error"])
            nothing = await ask("redeem", request_args(), by="cli:test")
            assert not nothing["ok"] and nothing["reason_code"] == "nothing_to_redeem"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
