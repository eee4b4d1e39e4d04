"""CLI end to end: ``polybot mock-data-api`` (subprocess) with a CLOB double on the same ledger, read
with the Data API client; a position given with --position shows up, in exact decimals."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from decimal import Decimal

from core.markets.data_api import DataApiClient
from tests.conftest import REPO_ROOT
from tests.procs import Lines, console_script, running, stop_group

HOLDER = "0x00000000000000000000000000000000000000aa"


async def _positions(url: str, user: str) -> list[tuple[str, Decimal]]:
    client = DataApiClient(url, timeout_s=5)
    try:
        return [(p.asset, p.size) for p in await client.positions(user)]
    finally:
        await client.aclose()


def test_mock_data_api_serves_the_given_positions_and_the_clob_double_beside_it() -> None:
    argv = [console_script("polybot"), "mock-data-api", "--port", "0", "--clob-port", "0"]
    argv += ["--position", f"{HOLDER}:123:2.25"]
    with running(
        argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        out, err = Lines(proc, proc.stdout), Lines(proc, proc.stderr)
        url, clob, _ = out.wait_lines(3, 60)
        assert url.startswith("http://127.0.0.1:") and clob.startswith("clob: http://127.0.0.1:")
        assert asyncio.run(_positions(url, HOLDER)) == [("123", Decimal("2.25"))]
        clob_url = clob.split()[1]
        assert asyncio.run(_positions(clob_url, HOLDER)) == [("123", Decimal("2.25"))]  # one ledger
        rc = stop_group(proc, first=signal.SIGINT)
        assert rc == 0, err.close()
