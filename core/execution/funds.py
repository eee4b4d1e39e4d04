"""What the trader can spend and sell: collateral (pUSD) and shares per token.

The risk gate (:mod:`core.execution.risk_gate`) refuses a BUY beyond the collateral left after
open buy orders, and a SELL beyond the shares left after open sell orders. Where the numbers come
from depends on the mode:

- **Paper**: a configured bankroll (``risk.paper_bankroll``) and the engine's own fills —
  collateral = bankroll − (money paid for buys and fees − money received for sells); shares =
  the engine's positions.
- **Live** (and dry-run with API credentials): the venue's ``GET /balance-allowance`` —
  collateral, and the conditional balance of each token — read at start, after fills, on a
  schedule, and on demand before a SELL of a token not read recently. Until collateral has been
  read, buys are refused: never trade on a balance we have not seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from core.execution.positions import PositionBook

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Funds:
    """A snapshot for the risk gate. ``collateral`` None: unknown (buys are refused); ``shares`` None:
    the engine's positions are the truth; a token missing from ``shares`` falls back to them too."""

    collateral: Decimal | None
    shares: Mapping[str, Decimal] | None = None
    source: str = ""
    allowance: Decimal | None = None  # pUSD the exchanges may spend, as the venue last said (None: not known)


class FundsSource(Protocol):
    def snapshot(self) -> Funds: ...

    async def ensure(self, token_ids: Iterable[str]) -> None:
        """Make sure the shares of ``token_ids`` are known before a SELL of them is checked."""
        ...


class PaperFunds:
    """A bankroll and the engine's own fills (paper has no venue to ask)."""

    def __init__(self, bankroll: Decimal, positions: PositionBook) -> None:
        self.bankroll = bankroll
        self.positions = positions

    def snapshot(self) -> Funds:
        return Funds(self.bankroll - self.positions.cash_spent(), None, f"paper bankroll {self.bankroll} pUSD")

    async def ensure(self, token_ids: Iterable[str]) -> None:
        return None  # the engine's positions are always current


@runtime_checkable
class BalanceReader(Protocol):
    """``GET /balance-allowance`` (the CLOB relayer)."""

    async def collateral_balance_allowance(self) -> tuple[Decimal, Decimal | None]: ...

    async def token_balance(self, token_id: str) -> Decimal: ...


@dataclass
class VenueFunds:
    """The venue's balances, cached; every read is bounded by the relayer's own timeout."""

    reader: BalanceReader
    max_age_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    collateral: Decimal | None = None
    allowance: Decimal | None = None
    collateral_at: float | None = None
    shares: dict[str, Decimal] = field(default_factory=dict)
    shares_at: dict[str, float] = field(default_factory=dict)
    last_error: str = ""
    reads: int = 0
    errors: int = 0

    def snapshot(self) -> Funds:
        if self.collateral is None:
            source = "venue balance not read yet" + (f" ({self.last_error})" if self.last_error else "")
        else:
            source = "venue balance"
        return Funds(self.collateral, dict(self.shares), source, self.allowance)

    async def refresh(self, token_ids: Iterable[str] = ()) -> bool:
        """Read collateral and the given tokens; False when any read failed (the old values stay)."""
        ok = await self._read_collateral()
        for token_id in dict.fromkeys(token_ids):
            ok = await self._read_token(token_id) and ok
        return ok

    async def ensure(self, token_ids: Iterable[str]) -> None:
        now = self.clock()
        for token_id in dict.fromkeys(token_ids):
            at = self.shares_at.get(token_id)
            if at is None or now - at > self.max_age_s:
                await self._read_token(token_id)

    def age_s(self) -> float | None:
        return None if self.collateral_at is None else self.clock() - self.collateral_at

    async def _read_collateral(self) -> bool:
        try:
            value, allowance = await self.reader.collateral_balance_allowance()
        except Exception as exc:
            self._failed("collateral", exc)
            return False
        self.collateral, self.allowance, self.collateral_at = value, allowance, self.clock()
        self.reads += 1
        return True

    async def _read_token(self, token_id: str) -> bool:
        try:
            value = await self.reader.token_balance(token_id)
        except Exception as exc:
            self._failed(f"token {token_id[:12]}…", exc)
            return False
        self.shares[token_id], self.shares_at[token_id] = value, self.clock()
        self.reads += 1
        return True

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("reading the venue balance of %s failed: %s", what, self.last_error)
