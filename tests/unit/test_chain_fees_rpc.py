"""Fees and gas within the caps; the JSON-RPC client's errors and bounded retries (429 with
Retry-After, timeouts); the factory's choice of sender."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from core.chain.calls import merge_call
from core.chain.dry_run import DryRunTxSender
from core.chain.factory import RefusingTxSender, tx_sender_for
from core.chain.fees import Caps, FeeRefusal, Fees, bumped_fees, gas_limit, initial_fees
from core.chain.journal import MemoryTxJournal
from core.chain.rpc import JsonRpc
from core.chain.rpc_errors import (
    AlreadyKnown,
    ExecutionReverted,
    NonceTooLow,
    ReplacementUnderpriced,
    RpcCallError,
    RpcRateLimited,
    RpcTimeout,
    RpcUnreachable,
)
from core.chain.tx import TxManager
from core.chain.types import TxStatus
from core.settings import Settings, load_settings
from core.settings.sections import ChainSettings

GWEI = 10**9
CAPS = Caps(max_fee=100 * GWEI, max_tip=40 * GWEI, gas_limit=300_000, bump_percent=15)
SECRET_URL = "https://rpc.test/v2/SECRETAPIKEY"
CONDITION = "0x" + "5a" * 32


def test_initial_fees_follow_the_base_fee_within_the_caps() -> None:
    assert initial_fees(30 * GWEI, 25 * GWEI, CAPS) == Fees(85 * GWEI, 25 * GWEI)
    assert initial_fees(30 * GWEI, 90 * GWEI, CAPS) == Fees(100 * GWEI, 40 * GWEI)  # tip capped, then max fee
    assert initial_fees(80 * GWEI, 25 * GWEI, CAPS) == Fees(100 * GWEI, 25 * GWEI)
    with pytest.raises(FeeRefusal, match="base fee 101 gwei alone exceeds"):
        initial_fees(101 * GWEI, 25 * GWEI, CAPS)


def test_a_replacement_raises_both_fees_or_is_not_made() -> None:
    bumped = bumped_fees(Fees(85 * GWEI, 25 * GWEI), 30 * GWEI, 25 * GWEI, CAPS)
    assert bumped == Fees(97_750_000_000, 28_750_000_000)
    assert bumped_fees(Fees(95 * GWEI, 25 * GWEI), 30 * GWEI, 25 * GWEI, CAPS) is None  # 100 < 95 + 10 %
    assert bumped_fees(Fees(60 * GWEI, 38 * GWEI), 30 * GWEI, 25 * GWEI, CAPS) is None  # tip cap 40 < 38 + 10 %
    # a base fee that rose meanwhile lifts the max fee past the bump
    assert bumped_fees(Fees(50 * GWEI, 25 * GWEI), 45 * GWEI, 25 * GWEI, CAPS) == Fees(100 * GWEI, 28_750_000_000)


def test_gas_limit_has_a_margin_and_a_cap() -> None:
    assert gas_limit(161_000, CAPS) == 193_200
    assert gas_limit(290_000, CAPS) == 300_000  # the margin is held to the cap
    with pytest.raises(FeeRefusal, match=r"exceeds chain\.gas_limit_cap"):
        gas_limit(300_001, CAPS)


# --------------------------------------------------------------------------- the JSON-RPC client


def _rpc(handler: object, sleeps: list[float]) -> JsonRpc:
    async def sleep(s: float) -> None:
        sleeps.append(s)

    transport = httpx.MockTransport(handler)  # type: ignore[arg-type]  # a plain request -> response function
    return JsonRpc(SECRET_URL, transport=transport, sleep=sleep, max_retries=2)


def _answer(request: httpx.Request, **body: object) -> httpx.Response:
    call = json.loads(request.content)
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": call["id"], **body})


async def test_429_is_retried_after_the_servers_hint_then_reported() -> None:
    sleeps: list[float] = []
    answers = iter([429, 429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        if status == 429:
            return httpx.Response(429, headers={"Retry-After": "3"})
        return _answer(request, result="0x89")

    rpc = _rpc(handler, sleeps)
    assert await rpc.chain_id() == 137
    assert sleeps == [3.0, 3.0]  # the hint is a floor under the backoff (0.5, 1.0)

    rpc = _rpc(lambda request: httpx.Response(429, headers={"Retry-After": "2"}), sleeps := [])
    with pytest.raises(RpcRateLimited, match="rate limited") as err:
        await rpc.block_number()
    assert err.value.retry_after_s == 2.0 and len(sleeps) == 2
    assert "SECRETAPIKEY" not in str(err.value) and "https://rpc.test" in str(err.value)
    await rpc.aclose()


async def test_a_timeout_is_retried_bounded() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("slow", request=request)

    sleeps: list[float] = []
    rpc = _rpc(handler, sleeps)
    with pytest.raises(RpcTimeout, match="no answer in time"):
        await rpc.get_transaction_receipt("0x" + "00" * 32)
    assert calls == 3 and sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("message", "cls"),
    [
        ("nonce too low: address 0xabc, tx: 0 state: 1", NonceTooLow),
        ("already known", AlreadyKnown),
        ("replacement transaction underpriced", ReplacementUnderpriced),
        ("transaction underpriced: gas tip cap 1, minimum needed 25000000000", RpcCallError),
    ],
)
async def test_send_errors_are_told_apart(message: str, cls: type[RpcCallError]) -> None:
    rpc = _rpc(lambda request: _answer(request, error={"code": -32000, "message": message}), [])
    with pytest.raises(RpcCallError) as err:
        await rpc.send_raw_transaction(b"\x02")
    assert type(err.value) is cls and message in str(err.value) and "SECRETAPIKEY" not in str(err.value)


async def test_a_revert_shows_its_reason() -> None:
    data = "0x08c379a0" + format(32, "064x") + format(5, "064x") + b"nope!".hex().ljust(64, "0")
    rpc = _rpc(lambda request: _answer(request, error={"code": 3, "message": "execution reverted", "data": data}), [])
    with pytest.raises(ExecutionReverted, match="reason: nope!") as err:
        await rpc.estimate_gas({"to": "0x" + "11" * 20, "data": "0x"})
    assert err.value.reason == "nope!"


async def test_unreachable_names_the_origin_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sleeps: list[float] = []
    rpc = _rpc(handler, sleeps)
    with pytest.raises(RpcUnreachable, match="unreachable") as err:
        await rpc.chain_id()
    assert "SECRETAPIKEY" not in str(err.value) and sleeps == []  # a refused connection is not retried


# --------------------------------------------------------------------------- senders


def _settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "polybot.toml"
    path.write_text(text)
    return load_settings(path, env={}).settings


async def test_the_factory_picks_the_sender(tmp_path: Path) -> None:
    key = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
    journal = MemoryTxJournal()
    bare = _settings(tmp_path, "")
    assert isinstance(tx_sender_for(bare, journal, dry_run=True), DryRunTxSender)
    refusing = tx_sender_for(bare, journal, dry_run=False)
    assert isinstance(refusing, RefusingTxSender) and "rpc_url is not set" in refusing.reason
    live = _settings(tmp_path, f'[chain]\nrpc_url = "{SECRET_URL}"\n[relayer]\nprivate_key = "{key}"\n')
    manager = tx_sender_for(live, journal, dry_run=False)
    assert isinstance(manager, TxManager)
    await manager.aclose()
    proxy = _settings(
        tmp_path,
        f'[chain]\nrpc_url = "{SECRET_URL}"\n[relayer]\nprivate_key = "{key}"\nsignature_type = 2\n'
        'funder = "0x1111111111111111111111111111111111111111"\n',
    )
    refused = await tx_sender_for(proxy, journal, dry_run=False).send(
        merge_call(CONDITION, 1, neg_risk=False), purpose="merge", ref=CONDITION
    )
    assert refused.status is TxStatus.REFUSED and "Safe" in (refused.error or "") and "by hand" in (refused.error or "")
    assert journal.audits[-1].action == "chain_refused"


async def test_a_dry_run_without_rpc_describes_and_sends_nothing() -> None:
    journal = MemoryTxJournal()
    sender = DryRunTxSender(ChainSettings(max_fee_gwei=Decimal(100)), chain_id=137, journal=journal)
    result = await sender.send(merge_call(CONDITION, 2_000_000, neg_risk=True), purpose="merge", ref=CONDITION)
    assert result.status is TxStatus.DRY_RUN and result.ok and result.tx_hash is None
    assert "not estimated: no chain.rpc_url" in (result.error or "")
    assert [(a.action, a.mode) for a in journal.audits] == [("chain_dry_run", "dry_run")]
    assert journal.entries == {}
