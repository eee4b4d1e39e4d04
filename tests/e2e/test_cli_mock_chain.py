"""CLI end to end: `polybot mock-chain` in its own process group answers JSON-RPC, mines a signed
merge, grows on its block timer, serves the approvals check, and stops cleanly on SIGINT."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import pytest

from polybot.cli.main import main
from tests.chain_double import ADDRESS, CTF_ADAPTER, merge_data, signed
from tests.conftest import REPO_ROOT
from tests.procs import Lines, console_script, running, stop_group, wait_until

START_TIMEOUT_S = 30.0


def _rpc(http: httpx.Client, url: str, method: str, *params: object) -> object:
    body = http.post(url, json={"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}).json()
    assert body["id"] == 7, body
    return body.get("result", body.get("error"))


def test_mock_chain_serves_json_rpc_until_interrupted(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [console_script("polybot"), "mock-chain", "--port", "0", "--blocks-per-second", "20", "--fund", ADDRESS]
    with running(
        argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        out, err = Lines(proc, proc.stdout), Lines(proc, proc.stderr)
        (url,) = out.wait_lines(1, START_TIMEOUT_S)
        assert url.startswith("http://127.0.0.1:"), (url, err.text)
        banner = out.wait_for("Ctrl-C to stop", START_TIMEOUT_S)
        assert "CtfCollateralAdapter 0xAdA100Db00Ca00073811820692005400218FcE1f" in banner
        condition = next(line.split()[1] for line in banner.splitlines() if "(binary)" in line)

        with httpx.Client(timeout=10) as http:
            assert _rpc(http, url, "eth_chainId") == "0x89"
            tx_hash = _rpc(
                http, url, "eth_sendRawTransaction", signed(CTF_ADAPTER, merge_data(condition, 5_000_000), 0)
            )
            assert isinstance(tx_hash, str) and tx_hash.startswith("0x"), tx_hash
            receipt = _rpc(http, url, "eth_getTransactionReceipt", tx_hash)
            assert isinstance(receipt, dict) and receipt["status"] == "0x1"
            mined_at = int(receipt["blockNumber"], 16)
            wait_until(
                lambda: int(str(_rpc(http, url, "eth_blockNumber")), 16) >= mined_at + 3,
                30,
                "three confirmations from the block timer",
            )

        started = time.monotonic()
        assert main(["relayer-approve-outcome", "--address", ADDRESS, "--rpc-url", url]) == 0
        assert "0 of 3 approvals missing" in capsys.readouterr().out
        assert time.monotonic() - started < 30

        assert stop_group(proc, first=signal.SIGINT) == 0
        assert "mock-chain stopped" in err.close()
