"""Approval transactions (exact calldata) and reading allowances over JSON-RPC from a local double."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from py_clob_client_v2.config import get_contract_config

from core.chain.rpc import JsonRpc
from core.errors import PolybotError, UsageError
from core.execution import approvals as ap
from core.sim.http_double import HttpRequest, HttpResponse, MiniHttpServer

OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_addresses_match_the_facts_and_the_official_client() -> None:
    cfg = get_contract_config(137)
    assert ap.CTF_EXCHANGE_V2 == cfg.exchange_v2 == "0xE111180000d2663C0091e4f400237545B87B996B"
    assert ap.NEG_RISK_EXCHANGE_V2 == cfg.neg_risk_exchange_v2 == "0xe2222d279d744050d28e00520010520000310F59"
    assert ap.NEG_RISK_ADAPTER == cfg.neg_risk_adapter == "0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296"
    assert ap.PUSD == cfg.collateral == "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
    assert ap.CONDITIONAL_TOKENS == cfg.conditional_tokens == "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"


def test_selectors() -> None:
    assert ap.APPROVE == "095ea7b3"
    assert ap.SET_APPROVAL_FOR_ALL == "a22cb465"
    assert ap.ALLOWANCE == "dd62ed3e"
    assert ap.IS_APPROVED_FOR_ALL == "e985e9c5"


def test_usdc_approve_calldata_decodes_to_spender_and_max() -> None:
    txs = ap.usdc_approvals()
    assert [t.spender for t in txs] == [ap.CTF_EXCHANGE_V2, ap.NEG_RISK_EXCHANGE_V2, ap.NEG_RISK_ADAPTER]
    for tx in txs:
        assert tx.token == ap.PUSD and tx.data.startswith("0x095ea7b3") and len(tx.data) == 2 + 8 + 128
        spender, amount = abi_decode(["address", "uint256"], bytes.fromhex(tx.data[10:]))
        assert spender.lower() == tx.spender.lower() and amount == 2**256 - 1


def test_outcome_set_approval_for_all_calldata() -> None:
    for tx in ap.outcome_approvals():
        assert tx.token == ap.CONDITIONAL_TOKENS and tx.data.startswith("0xa22cb465")
        operator, approved = abi_decode(["address", "bool"], bytes.fromhex(tx.data[10:]))
        assert operator.lower() == tx.spender.lower() and approved is True
        assert tx.as_dict()["value"] == "0" and tx.as_dict()["to"] == ap.CONDITIONAL_TOKENS


class FakeChain:
    """A tiny JSON-RPC node: answers eth_call for allowance / isApprovedForAll from a table."""

    def __init__(self) -> None:
        self.allowances: dict[tuple[str, str], int] = {}
        self.operators: set[tuple[str, str]] = set()
        self.calls: list[dict[str, Any]] = []
        self.fail_with: dict[str, Any] | None = None

    async def handle(self, req: HttpRequest) -> HttpResponse:
        call = json.loads(req.body)
        self.calls.append(call)
        if self.fail_with is not None:
            return HttpResponse.json({"jsonrpc": "2.0", "id": call["id"], "error": self.fail_with})
        assert call["method"] == "eth_call" and call["params"][1] == "latest"
        to, data = call["params"][0]["to"], call["params"][0]["data"]
        fn, args = data[2:10], bytes.fromhex(data[10:])
        owner, spender = (a.lower() for a in abi_decode(["address", "address"], args))
        if fn == ap.ALLOWANCE and to == ap.PUSD:
            value = self.allowances.get((owner, spender), 0)
        elif fn == ap.IS_APPROVED_FOR_ALL and to == ap.CONDITIONAL_TOKENS:
            value = int((owner, spender) in self.operators)
        else:
            return HttpResponse.json(
                {"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32000, "message": "execution reverted"}}
            )
        return HttpResponse.json({"jsonrpc": "2.0", "id": call["id"], "result": "0x" + format(value, "064x")})


@pytest.fixture
async def chain() -> AsyncIterator[tuple[FakeChain, str]]:
    fake = FakeChain()
    server = MiniHttpServer(fake.handle)
    await server.start()
    try:
        yield fake, f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def test_read_allowances_says_which_are_missing(chain: tuple[FakeChain, str]) -> None:
    fake, url = chain
    owner = OWNER.lower()
    fake.allowances[(owner, ap.CTF_EXCHANGE_V2.lower())] = 2**256 - 1
    fake.allowances[(owner, ap.NEG_RISK_EXCHANGE_V2.lower())] = 5_000_000  # limited: counts as missing
    fake.operators.add((owner, ap.NEG_RISK_ADAPTER.lower()))
    rpc = JsonRpc(url)
    try:
        usdc = await ap.read_approvals(rpc, OWNER, ap.usdc_approvals())
        outcome = await ap.read_approvals(rpc, OWNER, ap.outcome_approvals())
    finally:
        await rpc.aclose()
    assert [s.approved for s in usdc] == [True, False, False]
    assert [s.describe() for s in usdc] == ["approved (unlimited)", "MISSING (limited to 5000000 units)", "MISSING"]
    assert [s.approved for s in outcome] == [False, False, True]
    assert usdc[0].as_dict()["current"] == str(2**256 - 1) and usdc[1].as_dict()["approved"] is False
    assert len(fake.calls) == 6 and {c["params"][0]["to"] for c in fake.calls} == {ap.PUSD, ap.CONDITIONAL_TOKENS}


async def test_rpc_errors_are_one_clear_line(chain: tuple[FakeChain, str]) -> None:
    fake, url = chain
    fake.fail_with = {"code": -32601, "message": "method not found"}
    rpc = JsonRpc(url)
    try:
        with pytest.raises(PolybotError, match="method not found"):
            await ap.read_approvals(rpc, OWNER, ap.usdc_approvals())
        with pytest.raises(UsageError, match="not an address"):
            await ap.read_approvals(rpc, "0x123", ap.usdc_approvals())
    finally:
        await rpc.aclose()
    dead = JsonRpc("http://127.0.0.1:9", timeout_s=1)
    try:
        with pytest.raises(PolybotError, match="unreachable"):
            await ap.read_approvals(dead, OWNER, ap.usdc_approvals())
    finally:
        await dead.aclose()
