"""``[[feed.watch]]``: rules that select markets for the feed from the stored markets table.

Each rule is applied after every market refresh; a market is selected when it matches every
condition its rule sets. A rule's ``max_assets`` bounds what it may add (the busiest markets by
24 h volume first); a cap that cuts is logged and alerted (``watch_capped``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from core.settings.fields import Int, OptionalStr, Section

MAX_WATCH_ASSETS = 100_000


class WatchRule(Section):
    tag: OptionalStr = None
    """A Gamma tag (label or slug, any case) the market or its event carries."""
    min_volume_24h: Decimal | None = Field(None, ge=0)
    min_liquidity: Decimal | None = Field(None, ge=0)
    neg_risk_only: bool = False
    end_within_days: float | None = Field(None, gt=0, le=3650)
    """The market ends within this many days from now (markets without an end date are left out)."""
    end_after: datetime | None = None
    """The market ends after this instant (ISO 8601; naive means UTC)."""
    max_assets: Int = Field(1_000, ge=1, le=MAX_WATCH_ASSETS)
