"""Resolution stops the strategies on the resolved market only: its quoters, the Dutch runner of a
binary market, and a neg-risk event's runner when any one of its members resolves."""

from __future__ import annotations

from decimal import Decimal

from core.app.alerts import BookAlerts
from core.app.lifecycle import Lifecycle
from core.app.reseed import Reseeder
from core.app.tick_sizes import TickSizes
from core.app.trading import TradingWiring
from core.events import EventBus
from core.execution.positions import PositionBook
from core.feed.processor import FeedProcessor
from core.registry import MarketRegistry
from core.strategies.dutch import DutchConfig
from core.strategies.runner import DutchRunner, QuoterRunner
from core.strategies.spread import SpreadConfig, SpreadQuoter
from core.types import MarketInfo, TokenInfo
from tests.unit.test_app_trading import Fetcher, Gate, QuoteLog, Rules, Signer


def _market(cid: str, neg_risk: str | None = None) -> MarketInfo:
    tokens = (TokenInfo(f"{cid}-y", "Yes"), TokenInfo(f"{cid}-n", "No"))
    return MarketInfo(cid, f"{cid}?", cid, tokens, neg_risk=neg_risk is not None, neg_risk_market_id=neg_risk)


class Sink:
    def on_opportunity(self, *args: object) -> None:
        pass


def test_stop_market_drops_its_runners_and_a_neg_risk_events_runner() -> None:
    binary, other = _market("0xb1"), _market("0xb2")
    members = [_market(f"0xe{i}", "event") for i in range(3)]
    registry = MarketRegistry([binary, other, *members])
    processor = FeedProcessor()
    cfg = DutchConfig(safety_margin_usdc=Decimal("0.01"), slippage_ticks=1)
    dutch = [DutchRunner([binary], cfg, Sink(), processor), DutchRunner([other], cfg, Sink(), processor)]
    dutch.append(DutchRunner(members, cfg, Sink(), processor))
    quoter = SpreadQuoter(SpreadConfig(2, 1, Decimal(5), Decimal(0), Decimal(100)))
    quoters = [QuoterRunner(m, t, quoter, QuoteLog(), processor) for m in (binary, other) for t in m.tokens]
    wiring = TradingWiring(
        book_alerts=BookAlerts(EventBus(), registry.label),
        reseeder=Reseeder(processor, Fetcher(), registry.label),
        tick_sizes=TickSizes(registry, Rules(), Signer()),
        dutch_runners=dutch,
        quoters=quoters,
        gate=Gate(),
        positions=PositionBook(),
        paper_fills=None,
        lifecycle=Lifecycle(),
    )
    assert wiring.stop_market("0xb1") == 3  # its Dutch runner and both quoters
    assert [r.markets[0].condition_id for r in wiring.dutch_runners] == ["0xb2", "0xe0"]
    assert {q.market.condition_id for q in wiring.quoters} == {"0xb2"}
    assert wiring.stop_market("0xe1") == 1  # one member resolved: the event's runner stops
    assert [r.markets[0].condition_id for r in wiring.dutch_runners] == ["0xb2"]
    assert wiring.stop_market("0xe2") == 0
    assert len(wiring.runners()) == 3
