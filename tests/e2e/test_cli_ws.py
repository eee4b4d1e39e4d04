"""``polybot mock-ws`` and ``polybot record-ws`` end to end, as subprocesses on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from core.cli.main import main
from core.feed.replay import iter_frames
from core.feed.ws import subscribe_message
from core.sim.mock_ws import MockMarketServer

POLYBOT = str(Path(sys.executable).parent / "polybot")
TIMEOUT = 20.0


async def run_polybot(*args: str, limit_s: float = TIMEOUT) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        POLYBOT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def read_records(path: Path) -> list[dict[str, object]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in records:
        assert list(rec) == ["recv_ns", "frame"]
        assert isinstance(rec["recv_ns"], int) and isinstance(rec["frame"], str)
    return records


async def test_mock_ws_port_zero_prints_url_and_assets_then_serves() -> None:
    proc = await asyncio.create_subprocess_exec(
        POLYBOT,
        "mock-ws",
        "--port",
        "0",
        "--assets",
        "2",
        "--seed",
        "3",
        "--rate",
        "100",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().strip()
        assets_line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().strip()
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/ws/market")
        assert int(url.split(":")[2].split("/")[0]) > 0
        label, *assets = assets_line.split()
        assert label == "assets:" and len(assets) == 2
        async with connect(url, proxy=None) as ws:
            await ws.send(subscribe_message(assets))
            async with asyncio.timeout(TIMEOUT):
                first = json.loads(await ws.recv())
                await ws.send("PING")
                while (text := await ws.recv()) != "PONG":
                    json.loads(text)
        assert first["event_type"] == "book" and first["asset_id"] in assets
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0
    assert "served 1 connections" in err.decode()


async def test_record_ws_writes_exactly_max_messages(tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl"
    async with MockMarketServer(assets=2, seed=4, rate_hz=300) as server:
        code, stdout, stderr = await run_polybot(
            "record-ws", server.url, str(out), "--subscribe", *server.asset_ids, "--max-messages", "25", "--json"
        )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["messages"] == 25 and summary["path"] == str(out)
    assert summary["bytes"] == out.stat().st_size
    records = read_records(out)
    assert len(records) == 25
    assert [f for _, f in iter_frames(out)] == [r["frame"] for r in records]  # the replay reader agrees
    assert [json.loads(str(r["frame"]))["event_type"] for r in records[:2]] == ["book", "book"]
    stamps = [int(str(r["recv_ns"])) for r in records]
    assert stamps == sorted(stamps)


async def test_record_ws_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl"
    async with MockMarketServer(assets=2, seed=5, rate_hz=200) as server:
        proc = await asyncio.create_subprocess_exec(
            POLYBOT,
            "record-ws",
            server.url,
            str(out),
            "--subscribe",
            *server.asset_ids,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(int(TIMEOUT / 0.05)):  # until a few frames are on disk
            if out.exists() and out.stat().st_size >= 2000:
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("recorded ")
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    records = read_records(out)
    assert len(records) >= 3
    assert f"recorded {len(records)} messages" in stdout.decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_record_ws_reports_when_nothing_could_be_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws/market"
    code = main(["record-ws", url, str(tmp_path / "x.jsonl"), "--subscribe", "1", "--duration", "0.5"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no frames recorded" in err and "connect failed" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["record-ws", "ws://127.0.0.1:1/ws/market", "OUT"], "--subscribe"),
        (["record-ws", "http://127.0.0.1:1/x", "OUT", "--subscribe", "1"], "ws://"),
        (["record-ws", "ws://127.0.0.1:1/ws/market", "/no/such/dir/o.jsonl", "--subscribe", "1"], "does not exist"),
        (["mock-ws", "--port", "0", "--recording", "/no/such/file.jsonl"], "recording not found"),
        (["record-ws", "ws://x/ws", "OUT", "--subscribe", "1", "--max-messages", "0"], "whole number from 1"),
        (["record-ws", "ws://x/ws", "DIR", "--subscribe", "1"], "is a directory"),
        (["mock-ws", "--port", "70000"], "whole number from 0 to 65535"),
        (["mock-ws", "--port", "0", "--rate", "nan"], "argument --rate"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    args = [str(tmp_path / "o.jsonl") if a == "OUT" else str(tmp_path) if a == "DIR" else a for a in args]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["record-ws", "mock-ws"])
def test_help_ends_with_an_example(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].strip().startswith(f"polybot {command} ")


async def test_record_ws_stops_when_the_feed_serves_none_of_its_assets(tmp_path: Path) -> None:
    """Was: an asset the feed does not serve made record-ws --max-messages wait forever in silence."""
    async with MockMarketServer(assets=2, seed=5, rate_hz=50) as server:
        url = server.url
        out = tmp_path / "none.jsonl"
        argv = ["record-ws", url, str(out), "--subscribe", "abc", "--max-messages", "3"]
        proc = await asyncio.create_subprocess_exec(
            POLYBOT,
            *argv,
            "--first-frame-timeout",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == 1, err.decode()
    assert err.decode().strip().splitlines()[-1] == f"polybot record-ws: no frames for abc after 2s from {url}"
    assert out.read_text() == ""
