"""``polybot mock-ws`` and ``polybot record-ws`` end to end, as subprocesses on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from core.feed.connection import subscribe_message
from core.feed.replay import iter_frames
from core.sim.mock_ws import MockMarketServer
from polybot.cli.main import main
from tests.procs import Lines, arun, console_script, spawn, stop_group

POLYBOT = console_script("polybot")
TIMEOUT = 20.0


async def run_polybot(*args: str, limit_s: float = TIMEOUT) -> tuple[int, str, str]:
    done = await arun([POLYBOT, *args], timeout_s=limit_s, text=True)
    return done.returncode, done.stdout, done.stderr


def spawn_polybot(*args: str) -> tuple[subprocess.Popen[str], Lines, Lines]:
    """``polybot ARGS`` leading its own process group, with readers of its stdout and stderr."""
    proc = spawn([POLYBOT, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, Lines(proc, proc.stdout), Lines(proc, proc.stderr)


def read_records(path: Path) -> list[dict[str, object]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in records:
        assert list(rec) == ["recv_ns", "frame"]
        assert isinstance(rec["recv_ns"], int) and isinstance(rec["frame"], str)
    return records


async def test_mock_ws_port_zero_prints_url_and_assets_then_serves() -> None:
    proc, stdout, stderr = spawn_polybot("mock-ws", "--port", "0", "--assets", "2", "--seed", "3", "--rate", "100")
    try:
        url, assets_line = await asyncio.to_thread(stdout.wait_lines, 2, TIMEOUT)
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
        rc = await asyncio.to_thread(stop_group, proc)  # SIGTERM first: the clean stop is under test
    err = stderr.close()
    assert rc == 0, err
    assert "served 1 connections" in err


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
        proc, stdout_lines, stderr_lines = spawn_polybot(
            "record-ws", server.url, str(out), "--subscribe", *server.asset_ids
        )
        try:
            for _ in range(int(TIMEOUT / 0.05)):  # until a few frames are on disk
                if out.exists() and out.stat().st_size >= 2000:
                    break
                await asyncio.sleep(0.05)
        finally:  # Ctrl-C is the stop under test; the group is SIGKILLed if it does not obey
            rc = await asyncio.to_thread(stop_group, proc, first=signal.SIGINT)
        stdout, stderr = stdout_lines.close(), stderr_lines.close()
    assert rc == 0, stderr
    assert stdout.startswith("recorded ")
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    records = read_records(out)
    assert len(records) >= 3
    assert f"recorded {len(records)} messages" in stdout


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
        code, _, err = await run_polybot(*argv, "--first-frame-timeout", "2", limit_s=30)
    assert code == 1, err
    assert err.strip().splitlines()[-1] == f"polybot record-ws: no frames for abc after 2s from {url}"
    assert out.read_text() == ""
