"""The Dutch settings reach what they configure: the legs' order type, the group figures' latency
budget, and the paper relayer's latency."""

from __future__ import annotations

from core.app.execution_stack import build_execution
from core.app.strategies import dutch_config
from core.events import EventBus
from core.execution.memory_store import MemoryExecutionStore
from core.execution.relayers.paper import PaperRelayer
from core.registry import MarketRegistry
from core.settings import load_settings
from core.types import OrderType


def _settings(**env: str) -> object:
    return load_settings(None, env={f"POLYBOT_{k.upper()}": v for k, v in env.items()}).settings


def test_the_legs_order_type_comes_from_the_settings() -> None:
    assert dutch_config(_settings()).order_type is OrderType.FOK  # type: ignore[arg-type]
    fak = _settings(strategies__dutch__order_type="FAK")
    assert dutch_config(fak).order_type is OrderType.FAK  # type: ignore[arg-type]


def test_latency_budget_and_paper_latency_reach_the_engine_and_the_relayer() -> None:
    s = _settings(strategies__dutch__latency_budget_ms="750", relayer__paper_latency_ms="120")
    stack = build_execution(s, MarketRegistry([]), {}, MemoryExecutionStore(), EventBus(), lambda: 0.0)  # type: ignore[arg-type]
    assert isinstance(stack.relayer, PaperRelayer) and stack.relayer.latency_s == 0.12
    assert stack.engine._groups.latency_budget_s == 0.75
