"""``polybot metrics-serve`` as a subprocess, scraped over real HTTP while frames flow.

One run follows a local market-channel double (real websocket on loopback) and checks that
frames, decode errors and reconnects move the counters; one replays the project's recording at
a paced rate and watches the values grow while it runs.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.sim.mock_ws import MockMarketServer
from tests.conftest import PROJECT_FIXTURES
from tests.procs import Lines, console_script, spawn, stop_group

POLYBOT = console_script("polybot")
RECORDING = PROJECT_FIXTURES / "recordings" / "demo_market.jsonl"
TIMEOUT = 20.0

pytestmark = pytest.mark.slow  # two subprocesses, a few seconds each

Key = tuple[str, frozenset[tuple[str, str]]]
Values = dict[Key, float]


def v(vals: Values, name: str, **labels: str) -> float:
    return vals.get((name, frozenset(labels.items())), 0.0)


class Served:
    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client

    async def scrape(self) -> Values:
        resp = await self.client.get(self.url)
        assert resp.status_code == 200
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(resp.text)
            for s in fam.samples
        }

    async def until(self, what: str, check: Callable[[Values], bool], limit_s: float = TIMEOUT) -> Values:
        """Scrape until ``check`` holds (bounded); fail with the last values otherwise."""
        vals: Values = {}
        try:
            async with asyncio.timeout(limit_s):
                while True:
                    vals = await self.scrape()
                    if check(vals):
                        return vals
                    await asyncio.sleep(0.1)
        except TimeoutError:
            polybot = {k: x for k, x in vals.items() if k[0].startswith("polybot_ws") and x}
            pytest.fail(f"timed out waiting for {what}; last ws values: {polybot}")


@asynccontextmanager
async def start_serve(*args: str) -> AsyncIterator[Served]:
    """``polybot metrics-serve`` leading its own process group; SIGTERM (the clean stop under
    test) to the group when done, SIGKILL to whatever does not obey; a body that ends normally
    then checks that it exited 0."""
    proc = spawn(
        [POLYBOT, "metrics-serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = Lines(proc, proc.stdout), Lines(proc, proc.stderr)
    try:
        (first,) = await asyncio.to_thread(stdout.wait_lines, 1, TIMEOUT)
        assert first.startswith("http://127.0.0.1:") and first.endswith("/metrics"), first
        assert int(first.split(":")[2].split("/")[0]) > 0  # --port 0 reported the port it got
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as client:
            yield Served(first, client)
    finally:
        rc = await asyncio.to_thread(stop_group, proc)
    assert rc == 0, stderr.close()


async def test_metrics_serve_follows_a_websocket_and_counters_move() -> None:
    async with MockMarketServer(assets=2, seed=5, rate_hz=100) as ws_server:
        assets = ws_server.asset_ids
        async with start_serve(
            "--no-replay", "--ws-url", ws_server.url, "--subscribe", *assets, "--duration", "60"
        ) as served:
            first = await served.until(
                "both books seeded on a connected socket",
                lambda x: (
                    v(x, "polybot_books", status="ok") == 2
                    and v(x, "polybot_ws_connection_state", connection="0", state="connected") == 1
                ),
            )
            assert v(first, "polybot_ws_events_total", event_type="book") == 2  # one snapshot per asset
            assert v(first, "polybot_ws_connection_assets", connection="0") == 2
            frames = v(first, "polybot_ws_frames_total")
            later = await served.until("more frames", lambda x: v(x, "polybot_ws_frames_total") > frames)
            assert v(later, "polybot_ws_events_total", event_type="price_change") > 0
            assert v(later, "polybot_feed_receive_to_apply_seconds_count") > 0
            assert 0 <= v(later, "polybot_ws_last_frame_age_seconds", connection="0") < 5
            assert v(later, "polybot_feed_input_errors_total", reason="malformed_json") == 0

            ws_server.send_garbage()  # a malformed frame: counted, the feed goes on
            await served.until(
                "the malformed frame to be counted",
                lambda x: v(x, "polybot_feed_input_errors_total", reason="malformed_json") == 1,
            )

            ws_server.drop_connections()  # the client sees 1006, reconnects, resubscribes
            after = await served.until(
                "a reconnect",
                lambda x: (
                    v(x, "polybot_ws_reconnects_total", connection="0") >= 1
                    and v(x, "polybot_ws_connection_state", connection="0", state="connected") == 1
                ),
            )
            assert v(after, "polybot_ws_disconnects_total", connection="0") >= 1
            assert v(after, "polybot_pipeline_reconnect_resets_total") >= 1
            await served.until(
                "the books to be re-seeded after the reconnect",
                lambda x: (
                    v(x, "polybot_ws_events_total", event_type="book") >= 4 and v(x, "polybot_books", status="ok") == 2
                ),
            )


async def test_metrics_serve_replays_a_recording_and_values_grow_while_it_runs() -> None:
    async with start_serve("--replay", str(RECORDING), "--rate", "300", "--duration", "60") as served:
        seen: list[float] = []

        def frames_done(x: Values) -> bool:
            seen.append(v(x, "polybot_ws_frames_total"))
            return seen[-1] == 403

        final = await served.until("the whole recording", frames_done)
        partial = [n for n in seen if 0 < n < 403]
        assert partial, f"never saw the replay in progress: {seen}"
        assert seen == sorted(seen)  # a counter never goes backwards
        final = await served.until(
            "the writer to commit every row",
            lambda x: v(x, "polybot_writer_rows_written_total") == v(x, "polybot_writer_rows_enqueued_total") > 0,
        )
        assert v(final, "polybot_writer_receive_to_commit_seconds_count") == v(
            final, "polybot_writer_rows_written_total"
        )
        assert v(final, "polybot_writer_batches_total") >= 1
        assert v(final, "polybot_ws_events_total", event_type="last_trade_price") == 37
