"""What the settlement layer and the transaction layer say to each other."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ChainCall:
    """One contract call: target, exact calldata, and the same call decoded for people to read."""

    to: str  # checksummed address
    data: bytes  # selector + ABI-encoded arguments
    function: str  # e.g. "mergePositions(address,bytes32,bytes32,uint256[],uint256)"
    args: tuple[tuple[str, object], ...]  # (name, value) in ABI order, for display and audit
    contract: str  # a readable name: "CtfCollateralAdapter", "NegRiskCtfCollateralAdapter", ...
    value: int = 0  # wei sent along (always 0 for settlement)

    def describe(self) -> str:
        """``Contract.function(name=value, ...)`` on one line, addresses in full."""
        name = self.function.partition("(")[0]
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.args)
        return f"{self.contract} {self.to}: {name}({shown})"


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


class TxStatus(enum.StrEnum):
    DRY_RUN = "dry_run"  # built, estimated where possible, printed; nothing sent
    CONFIRMED = "confirmed"  # mined with status 1 and the configured confirmations on top
    REVERTED = "reverted"  # mined with status 0
    STUCK = "stuck"  # sent, not confirmed within the receipt timeout (hash kept, reconciled later)
    REFUSED = "refused"  # not sent: a cap, the wallet type, a failed estimate, no RPC configured
    FAILED = "failed"  # not sent: the RPC refused the raw transaction or could not be reached


@dataclass(frozen=True, slots=True)
class TxResult:
    call: ChainCall
    status: TxStatus
    tx_hash: str | None = None
    nonce: int | None = None
    gas_limit: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    gas_used: int | None = None
    block_number: int | None = None
    error: str | None = None
    attempts: tuple[str, ...] = field(default_factory=tuple)  # every hash sent for this call (replacements)

    @property
    def ok(self) -> bool:
        return self.status in (TxStatus.CONFIRMED, TxStatus.DRY_RUN)


class TxSender(Protocol):
    """Sends a call as one transaction and follows it (live), or only describes it (dry-run).

    ``purpose`` ("merge", "redeem", ...) and ``ref`` (the market or event it settles) go into the
    transaction journal and exec_audit. A call is sent at most once per (purpose, ref, nonce):
    the signed transaction's hash is persisted before it leaves."""

    async def send(self, call: ChainCall, *, purpose: str, ref: str) -> TxResult: ...
