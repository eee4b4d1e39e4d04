"""Runtime control: strategies on and off, and a listed subset of strategy and risk parameters.

Only the parameters in :data:`PARAMS` can be changed while running; each says which direction
loosens it (a higher notional limit, no limit at all, a smaller safety margin). A loosening
change is returned as a :class:`ParamChange` with ``loosens`` set: the face asks the admin for a
confirmation before :meth:`Tuning.apply`. Every change is kept in the ``state`` table
(:data:`STATE_KEY`, JSON) and applied again at start (:meth:`Tuning.restore`), so a restart
does not silently return to the file's figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from core.control.types import ActionResult, ControlError
from core.money import parse_plain_decimal

if TYPE_CHECKING:
    from core.execution.risk_gate import RiskGate
    from core.registry import MarketRegistry
    from core.strategies.dutch import DutchConfig
    from core.strategies.runner import DutchRunner, QuoterRunner

log = logging.getLogger(__name__)

STATE_KEY = "tuning"
STRATEGIES = ("dutch", "spread")
NONE_WORDS = ("none", "off", "unlimited")


class StrategyHost(Protocol):
    """The running strategies (:class:`core.app.trading.TradingWiring`): the lists the feed drives."""

    dutch_runners: list[DutchRunner]
    quoters: list[QuoterRunner]


class StateStore(Protocol):
    async def get_state(self, key: str) -> object: ...

    async def set_state(self, key: str, value: object) -> None: ...


@dataclass(frozen=True)
class ParamSpec:
    key: str
    kind: str  # "decimal" | "int"
    unit: str
    summary: str
    looser: str  # a risk limit: "up" (a higher value loosens it) or "down"; a strategy knob: ""
    nullable: bool = False  # "none" removes the limit (always a loosening)
    low: Decimal = Decimal(0)
    high: Decimal = Decimal(1_000_000)


PARAMS: dict[str, ParamSpec] = {
    p.key: p
    for p in [
        ParamSpec("dutch.safety_margin_usdc", "decimal", "pUSD/set", "profit a Dutch set must clear after fees", ""),
        ParamSpec("dutch.slippage_ticks", "int", "ticks", "ticks added to the worst level", "", high=Decimal(20)),
        ParamSpec("dutch.max_sets", "decimal", "shares", "cap on a Dutch set's size", "", nullable=True),
        ParamSpec("risk.max_order_notional", "decimal", "pUSD", "largest single order", "up", nullable=True),
        ParamSpec("risk.max_market_notional", "decimal", "pUSD", "exposure per market", "up", nullable=True),
        ParamSpec("risk.max_event_notional", "decimal", "pUSD", "exposure per event", "up", nullable=True),
        ParamSpec("risk.max_total_exposure", "decimal", "pUSD", "exposure overall", "up", nullable=True),
        ParamSpec("risk.daily_loss_limit", "decimal", "pUSD", "realised loss that disarms", "up", nullable=True),
    ]
}
_RISK_FIELDS = {
    "risk.max_order_notional": "max_order_notional",
    "risk.max_market_notional": "max_market_notional",
    "risk.max_event_notional": "max_event_notional",
    "risk.max_total_exposure": "max_total_exposure",
    "risk.daily_loss_limit": "daily_loss_limit",
}
_DUTCH_FIELDS = {
    "dutch.safety_margin_usdc": "safety_margin_usdc",
    "dutch.slippage_ticks": "slippage_ticks",
    "dutch.max_sets": "max_sets",
}

Value = Decimal | int | None


@dataclass(frozen=True)
class ParamRow:
    key: str
    value: Value
    unit: str
    summary: str
    changed: bool  # differs from the configuration's figure (set at runtime)


@dataclass(frozen=True)
class ParamChange:
    key: str
    old: Value
    new: Value
    loosens: bool
    requested_by: str

    def line(self) -> str:
        return f"{self.key}: {show(self.old)} → {show(self.new)}"


@dataclass(frozen=True)
class StrategyRow:
    name: str
    running: int  # runners (Dutch: one per market or event; spread: one per token) trading now
    paused: int
    paused_markets: list[str] = field(default_factory=list)
    kept_off: list[str] = field(default_factory=list)
    """What /strategy switched off and a restart keeps off ("all markets" or slugs)."""


def show(value: Value) -> str:
    return "none" if value is None else f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)


class TunedRuntime(Protocol):
    """What tuning reads and changes in the running service (:class:`core.control.facade.Runtime`)."""

    strategies: StrategyHost | None
    risk: RiskGate
    registry: MarketRegistry
    dutch: DutchConfig | None


class Tuning:
    def __init__(self, rt: TunedRuntime, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._rt = rt
        self._host = rt.strategies
        self._risk = rt.risk
        self._registry = rt.registry
        self._store: StateStore = rt.risk.store
        self._clock_ns = clock_ns
        self._configured = {key: self._current(key) for key in PARAMS}
        self._paused: dict[str, list[Any]] = {"dutch": [], "spread": []}
        self._paused_refs: set[str] = set()  # "dutch", "dutch:<condition id>" ...: what was asked, persisted

    # ---- parameters ------------------------------------------------------------------------
    def params(self) -> list[ParamRow]:
        return [
            ParamRow(k, self._current(k), p.unit, p.summary, self._current(k) != self._configured[k])
            for k, p in PARAMS.items()
        ]

    def _current(self, key: str) -> Value:
        if key in _RISK_FIELDS:
            value: Value = getattr(self._risk.limits, _RISK_FIELDS[key])
            return value
        cfg = self._rt.dutch
        return getattr(cfg, _DUTCH_FIELDS[key]) if cfg is not None else None

    def prepare_set(self, key: str, text: str, *, user: str) -> ParamChange:
        spec = PARAMS.get(key.strip().lower())
        if spec is None:
            raise ControlError(f"{key!r} cannot be set at runtime; one of: {', '.join(PARAMS)}", "unknown_param")
        if spec.key in _DUTCH_FIELDS and self._rt.dutch is None:
            raise ControlError("the Dutch strategy is not configured in this service", "unavailable")
        new = _parse(spec, text)
        old = self._current(spec.key)
        if new == old:
            raise ControlError(f"{spec.key} is already {show(old)}", "unchanged")
        return ParamChange(spec.key, old, new, _loosens(spec, old, new), user)

    async def apply(self, change: ParamChange, *, by: str) -> ActionResult:
        """Apply a prepared change (re-checked: a value changed meanwhile refuses it) and keep it."""
        now = self._current(change.key)
        if now != change.old:
            raise ControlError(f"{change.key} changed to {show(now)} meanwhile; nothing applied", "changed")
        self._assign(change.key, change.new)
        await self._save()
        log.info("parameter %s by %s", change.line(), by)
        return ActionResult(True, f"{change.line()} (kept across restarts)")

    def _assign(self, key: str, value: Value) -> None:
        # one field by name; _parse gave it the type the field holds (Decimal, int or None)
        if key in _RISK_FIELDS:
            limit: dict[str, Any] = {_RISK_FIELDS[key]: value}
            self._risk.set_limits(replace(self._risk.limits, **limit))
            return
        cfg = self._rt.dutch
        assert cfg is not None  # prepare_set refused Dutch keys without a Dutch configuration
        knob: dict[str, Any] = {_DUTCH_FIELDS[key]: value}
        new_cfg = replace(cfg, **knob)
        self._rt.dutch = new_cfg
        for runner in self._all("dutch"):
            runner.cfg = new_cfg

    # ---- strategies --------------------------------------------------------------------------
    def strategies(self) -> list[StrategyRow]:
        host = self._host_or_fail()
        return [
            StrategyRow(name, len(active), len(self._paused[name]), self._paused_names(name), self._kept_off(name))
            for name, active in (("dutch", host.dutch_runners), ("spread", host.quoters))
        ]

    def _kept_off(self, name: str) -> list[str]:
        out = []
        for ref in sorted(self._paused_refs):
            strategy, _, cid = ref.partition(":")
            if strategy == name:
                market = self._registry.get(cid) if cid else None
                out.append("all markets" if not cid else (market.slug if market is not None else cid))
        return out

    async def set_strategy(self, name: str, on: bool, market_ref: str | None, *, by: str) -> ActionResult:
        name = name.lower()
        if name not in STRATEGIES:
            raise ControlError(f"strategy must be dutch or spread, got {name!r}", "unknown_strategy")
        cid = self._market(market_ref) if market_ref else None
        moved = self._switch(name, on, cid)
        ref = f"{name}:{cid}" if cid else name
        if on:
            self._paused_refs -= {ref} if cid else {r for r in self._paused_refs if r.split(":")[0] == name}
        else:
            self._paused_refs.add(ref)
        await self._save()
        where = f" for {self._registry.resolve(cid).slug or cid}" if cid else ""
        state = "on" if on else "off"
        log.info("strategy %s %s%s by %s (%d runner(s))", name, state, where, by, moved)
        if not moved:
            return ActionResult(True, f"{name} was already {state}{where} (no runner changed)")
        return ActionResult(True, f"{name} {state}{where}: {moved} runner(s) {'resumed' if on else 'paused'}")

    def _switch(self, name: str, on: bool, cid: str | None) -> int:
        host = self._host_or_fail()
        active: list[Any] = host.dutch_runners if name == "dutch" else host.quoters
        paused = self._paused[name]
        source, target = (paused, active) if on else (active, paused)
        chosen = [r for r in source if cid is None or cid in _markets_of(r)]
        if on:  # a market that resolved while paused stays stopped
            chosen = [r for r in chosen if not any(self._closed(m) for m in _markets_of(r))]
        for runner in chosen:
            source.remove(runner)
            target.append(runner)
            if name == "spread" and not on:
                runner.set_armed(False, self._clock_ns())  # pulls its resting quotes
        return len(chosen)

    def _closed(self, condition_id: str) -> bool:
        market = self._registry.get(condition_id)
        return market is None or market.closed

    def _paused_names(self, name: str) -> list[str]:
        cids = {m for r in self._paused[name] for m in _markets_of(r)}
        return sorted(self._registry.resolve(c).slug or c for c in cids if self._registry.get(c) is not None)

    def _market(self, ref: str) -> str:
        try:
            return self._registry.resolve(ref).condition_id
        except Exception as exc:  # UsageError: an unknown or ambiguous reference
            raise ControlError(str(exc), "unknown_market") from None

    def _host_or_fail(self) -> StrategyHost:
        if self._host is None:
            raise ControlError("no strategies run in this process", "unavailable")
        return self._host

    def _all(self, name: str) -> list[Any]:
        if self._host is None:
            return []
        active = self._host.dutch_runners if name == "dutch" else self._host.quoters
        return [*active, *self._paused[name]]

    # ---- persistence -------------------------------------------------------------------------
    async def _save(self) -> None:
        params = {k: show(v) for k in PARAMS if (v := self._current(k)) != self._configured[k]}
        await self._store.set_state(STATE_KEY, {"params": params, "paused": sorted(self._paused_refs)})

    async def restore(self) -> list[str]:
        """Apply what was set at runtime before the last stop; returns what was applied (for the log)."""
        saved = await self._store.get_state(STATE_KEY)
        if not isinstance(saved, dict):
            return []
        applied: list[str] = []
        for key, text in dict(saved.get("params") or {}).items():
            spec = PARAMS.get(str(key))
            try:
                if spec is None or (spec.key in _DUTCH_FIELDS and self._rt.dutch is None):
                    raise ControlError("not settable here", "unknown_param")
                self._assign(spec.key, _parse(spec, str(text)))
                applied.append(f"{key}={text}")
            except (ControlError, ValueError) as exc:
                log.warning("saved parameter %s=%r not applied: %s", key, text, exc)
        for ref in [str(r) for r in saved.get("paused") or []]:
            name, _, cid = ref.partition(":")
            if name in STRATEGIES and self._host is not None and (not cid or self._registry.get(cid) is not None):
                self._switch(name, False, cid or None)
                self._paused_refs.add(ref)
                applied.append(f"{ref} off")
        return applied


def _markets_of(runner: Any) -> list[str]:
    markets = getattr(runner, "markets", None) or [runner.market]
    return [m.condition_id for m in markets]


def _parse(spec: ParamSpec, text: str) -> Value:
    word = text.strip().lower()
    if word in NONE_WORDS:
        if not spec.nullable:
            raise ControlError(f"{spec.key} cannot be removed; give a number", "invalid_value")
        return None
    try:
        value = parse_plain_decimal(word)
    except ValueError as exc:
        raise ControlError(f"{spec.key}: {exc}", "invalid_value") from None
    if not spec.low <= value <= spec.high or (spec.nullable and value == 0):
        low = f"({spec.low}" if spec.nullable else f"[{spec.low}"
        raise ControlError(f"{spec.key} must be within {low}, {spec.high}], got {text}", "invalid_value")
    if spec.kind == "int":
        if value != value.to_integral_value():
            raise ControlError(f"{spec.key} is a whole number, got {text}", "invalid_value")
        return int(value)
    return value


def _loosens(spec: ParamSpec, old: Value, new: Value) -> bool:
    if not spec.looser:
        return False  # a strategy knob: the risk limits still bound what it may do
    if new is None:
        return old is not None
    if old is None:
        return False  # a limit where there was none tightens
    return new > old if spec.looser == "up" else new < old
