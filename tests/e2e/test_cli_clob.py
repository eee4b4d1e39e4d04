"""CLI end to end: mock-clob (subprocess), relayer-dry-run against it, approval commands with an RPC double."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import encode_typed_data

from core.execution import approvals as ap
from core.sim.http_double import HttpRequest, HttpResponse, MiniHttpServer
from core.sim.mock_clob_verify import order_typed_data, recover_order_signer
from polybot.cli.main import main
from tests.conftest import REPO_ROOT, load_shared
from tests.procs import Lines, console_script, running, stop_group

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
EXCHANGE = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE = "0xe2222d279d744050d28e00520010520000310F59"


@pytest.fixture(scope="module")
def mock_clob() -> Iterator[dict[str, Any]]:
    with running(
        [console_script("polybot"), "mock-clob", "--port", "0"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        out, err = Lines(proc, proc.stdout), Lines(proc, proc.stderr)
        url, ws, *lines = out.wait_lines(8, 60)
        assert url.startswith("http://127.0.0.1:") and ws.startswith("user channel: ws://127.0.0.1:")
        markets = [ln.split()[1] for ln in lines if ln.startswith("market ")]
        tokens = [ln.split()[1] for ln in lines if ln.split()[0] in ("Yes", "No")]
        yield {"url": url, "binary": markets[0], "negrisk": markets[1], "tokens": tokens}
        rc = stop_group(proc, first=signal.SIGINT)
        assert rc == 0, err.close()


def _recover(order: dict[str, Any], exchange: str) -> str:
    return str(
        Account.recover_message(
            encode_typed_data(full_message=order_typed_data(order, exchange, 137)), signature=order["signature"]
        )
    )


def test_dry_run_json_is_the_exact_body_signed_by_the_key(
    mock_clob: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "relayer-dry-run",
            mock_clob["binary"],
            "yes",
            "buy",
            "0.45",
            "10",
            "--base-url",
            mock_clob["url"],
            "--private-key",
            KEY,
            "--json",
            "--api-key",
            "owner-uuid",
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    body = json.loads(out.out)
    assert body["owner"] == "owner-uuid" and body["orderType"] == "GTC" and body["postOnly"] is False
    order = body["order"]
    assert order["tokenId"] == mock_clob["tokens"][0]
    assert (order["makerAmount"], order["takerAmount"], order["side"]) == ("4500000", "10000000", "BUY")
    assert _recover(order, EXCHANGE) == ADDRESS
    assert KEY not in out.out + out.err and KEY[2:] not in out.out + out.err


def test_dry_run_human_output_neg_risk_by_condition_id(
    mock_clob: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "relayer-dry-run",
            mock_clob["negrisk"],
            "No",
            "SELL",
            "0.701",
            "7.5",
            "--base-url",
            mock_clob["url"],
            "--private-key",
            KEY,
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    fields = dict(
        line.split(None, 1) if "  " not in line else [p.strip() for p in line.split("  ", 1)]
        for line in out.splitlines()
    )
    assert fields["exchange"].startswith(NEG_RISK_EXCHANGE) and "NegRisk" in fields["exchange"]
    assert fields["maker"] == fields["signer"] == ADDRESS
    assert fields["token id"] == mock_clob["tokens"][3]
    assert fields["maker amount"].startswith("7500000 ") and fields["taker amount"].startswith("5257500 ")
    assert fields["signature type"].startswith("0 (EOA)") and fields["mode"].startswith("DRY RUN")


def test_dry_run_token_id_reads_tick_and_neg_risk(
    mock_clob: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    token = mock_clob["tokens"][2]  # neg-risk market, tick 0.001
    rc = main(
        [
            "relayer-dry-run",
            token,
            "-",
            "BUY",
            "0.123",
            "10",
            "--base-url",
            mock_clob["url"],
            "--private-key",
            KEY,
            "--json",
        ]
    )
    assert rc == 0
    order = json.loads(capsys.readouterr().out)["order"]
    assert recover_order_signer(order, NEG_RISK_EXCHANGE, 137) == ADDRESS


def test_dry_run_offline_deposit_wallet(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEST_KEY", KEY)
    funder = "0x1111111111111111111111111111111111111111"
    args = [
        "relayer-dry-run",
        "123",
        "Yes",
        "BUY",
        "0.5",
        "10",
        "--tick-size",
        "0.01",
        "--no-neg-risk",
        "--base-url",
        "http://127.0.0.1:9",
    ]
    rc = main([*args, "--private-key", "env:MY_TEST_KEY", "--signature-type", "3", "--funder", funder, "--json"])
    assert rc == 0
    order = json.loads(capsys.readouterr().out)["order"]
    assert order["maker"] == order["signer"] == funder and order["signatureType"] == 3
    assert recover_order_signer(order, EXCHANGE, 137) == ADDRESS


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["{binary}", "maybe", "BUY", "0.45", "10"], 2, "has no outcome 'maybe'"),
        (["{binary}", "Yes", "BUY", "0.455", "10"], 1, "tick grid"),
        (["{binary}", "Yes", "BUY", "0.45", "ten"], 2, "argument SIZE: must be a number"),
        (["{binary}", "Yes", "BUY", "0.45", "1e30"], 2, "argument SIZE: must be a number"),
        (["{binary}", "Yes", "BUY", "1.5", "10"], 2, "argument PRICE: must be a number greater than 0 and less than 1"),
        (["{binary}", "Yes", "BUY", "0.45", "10", "--signature-type", "2"], 2, "needs a funder"),
        (["nonsense", "Yes", "BUY", "0.45", "10"], 2, "MARKET must be a token id"),
        (["0x" + "ab" * 32, "Yes", "BUY", "0.45", "10"], 1, "cannot read market"),
    ],
)
def test_dry_run_errors_are_one_line(
    mock_clob: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    argv = [a.format(binary=mock_clob["binary"]) for a in argv]
    rc = main(["relayer-dry-run", *argv, "--base-url", mock_clob["url"], "--private-key", KEY])
    err = capsys.readouterr().err
    assert rc == code and message in err and "Traceback" not in err
    assert KEY not in err and KEY[2:] not in err


def test_dry_run_without_a_key_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POLYBOT_RELAYER__PRIVATE_KEY", raising=False)
    rc = main(["relayer-dry-run", "123", "Yes", "BUY", "0.5", "10", "--tick-size", "0.01", "--no-neg-risk"])
    assert rc == 2 and "no private key" in capsys.readouterr().err
    bad = "0x" + "12" * 31 + "zz"
    rc = main(
        [
            "relayer-dry-run",
            "123",
            "Yes",
            "BUY",
            "0.5",
            "10",
            "--tick-size",
            "0.01",
            "--no-neg-risk",
            "--private-key",
            bad,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "not a valid" in err and bad not in err


def test_dry_run_reads_the_key_from_the_environment(
    mock_clob: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYBOT_RELAYER__PRIVATE_KEY", KEY)
    rc = main(["relayer-dry-run", mock_clob["binary"], "No", "BUY", "0.52", "5", "--base-url", mock_clob["url"]])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "signature" in out.out and "DRY RUN" in out.out
    assert KEY not in out.out + out.err and KEY[2:] not in out.out + out.err


def _store_gamma_market(db_url: str, capture: str) -> Any:
    from core.markets import parse_market, store_markets
    from core.store.db import create_engine

    gm = parse_market(load_shared(capture))

    async def go() -> None:
        engine = create_engine(db_url)
        try:
            await store_markets(engine, [gm])
        finally:
            await engine.dispose()

    asyncio.run(go())
    return gm.info


def _stored_order(db_url: str, client_order_id: str) -> Any:
    from core.execution.store import SqlExecutionStore
    from core.store.db import create_engine, session_factory

    async def go() -> Any:
        engine = create_engine(db_url)
        try:
            return await SqlExecutionStore(session_factory(engine)).get_order(client_order_id)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_dry_run_reads_the_markets_table_and_stores_the_order(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--db-url", db_url, "--apply"]) == 0
    info = _store_gamma_market(db_url, "gamma/gamma_market_live.json")  # neg-risk, tick 0.001
    capsys.readouterr()
    argv = ["relayer-dry-run", info.slug, "No", "BUY", "0.123", "10", "--db-url", db_url]
    # A dead --base-url: everything needed comes from the database, nothing from the network.
    rc = main(
        [*argv, "--base-url", "http://127.0.0.1:9", "--private-key", KEY, "--json", "--client-order-id", "cli-db-1"]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    body = json.loads(out.out)
    assert body["order"]["tokenId"] == info.tokens[1].token_id
    assert recover_order_signer(body["order"], NEG_RISK_EXCHANGE, 137) == ADDRESS
    row = _stored_order(db_url, "cli-db-1")
    assert row is not None and row.status == "dry_run" and row.mode == "dry-run"
    assert row.signed_order == body and row.market == info.condition_id and row.token_id == info.tokens[1].token_id
    assert row.order_hash and row.price == Decimal("0.123") and row.size == Decimal("10")
    # The same client order id again: refused, one line.
    rc = main([*argv, "--base-url", "http://127.0.0.1:9", "--private-key", KEY, "--client-order-id", "cli-db-1"])
    assert rc == 1 and "already stored" in capsys.readouterr().err


def test_dry_run_refuses_an_unmigrated_database(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["relayer-dry-run", "123", "Yes", "BUY", "0.5", "10", "--db-url", sqlite_url, "--private-key", KEY])
    assert rc == 1 and "not migrated" in capsys.readouterr().err


# --------------------------------------------------------------------------- approvals


class _RpcThread:
    """A JSON-RPC double on its own loop: every approval present except the ones listed."""

    def __init__(self, missing: set[str]) -> None:
        self.missing = {m.lower() for m in missing}
        self.loop = asyncio.new_event_loop()
        self.server = MiniHttpServer(self.handle)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, req: HttpRequest) -> HttpResponse:
        call = json.loads(req.body)
        data = call["params"][0]["data"]
        _, spender = abi_decode(["address", "address"], bytes.fromhex(data[10:]))
        value = 0 if spender.lower() in self.missing else (2**256 - 1 if data[2:10] == ap.ALLOWANCE else 1)
        return HttpResponse.json({"jsonrpc": "2.0", "id": call["id"], "result": "0x" + format(value, "064x")})

    def __enter__(self) -> str:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return f"http://127.0.0.1:{self.server.port}"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_approve_usdc_prints_the_three_transactions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relayer-approve-usdc"]) == 0
    out = capsys.readouterr().out
    for tx in ap.usdc_approvals():
        assert tx.data in out and tx.spender in out
    assert out.count(f"to        {ap.PUSD}") == 3


def test_approve_outcome_json_with_rpc_reports_missing(capsys: pytest.CaptureFixture[str]) -> None:
    with _RpcThread({ap.NEG_RISK_ADAPTER}) as url:
        rc = main(["relayer-approve-outcome", "--address", ADDRESS.lower(), "--rpc-url", url, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert out["kind"] == "ConditionalTokens" and out["checked"] is True and out["address"] == ADDRESS
    assert out["missing"] == ["NegRisk Adapter"]
    assert [t["approved"] for t in out["transactions"]] == [True, True, False]
    assert all(t["to"] == ap.CONDITIONAL_TOKENS and t["from"] == ADDRESS for t in out["transactions"])


def test_approve_usdc_with_rpc_all_present(capsys: pytest.CaptureFixture[str]) -> None:
    with _RpcThread(set()) as url:
        rc = main(["relayer-approve-usdc", "--address", ADDRESS, "--rpc-url", url])
    out = capsys.readouterr().out
    assert rc == 0 and "0 of 3 approvals missing" in out and out.count("approved (unlimited)") == 3


def test_approve_rpc_needs_an_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relayer-approve-usdc", "--rpc-url", "http://127.0.0.1:9"]) == 2
    assert "--rpc-url needs --address" in capsys.readouterr().err


def test_help_ends_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("relayer-dry-run", "relayer-approve-usdc", "relayer-approve-outcome", "mock-clob"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert "example:" in out and f"polybot {cmd}" in out.split("example:")[1]
