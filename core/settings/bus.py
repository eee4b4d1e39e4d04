"""``[bus]``: the NATS JetStream market-data bus (feed workers publish, ``feed.source = "bus"`` reads).

Only a ``polybot feed-worker`` and a service with ``feed.source = "bus"`` use it; the default
service (``feed.source = "ws"``) opens its own websockets and never connects to NATS.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from core.settings.fields import DAY_S, Int, Seconds, Section

_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_SHARD = re.compile(r"\d+/\d+")


class BusSettings(Section):
    url: str = "nats://127.0.0.1:4222"
    """NATS server(s): one URL or several separated by commas (nats:// or tls://)."""
    prefix: str = "polybot"
    """First subject token(s): market data on ``<prefix>.md.<condition>.<asset>.<kind>``."""
    stream: str = "POLYBOT_MD"
    """The JetStream stream that keeps ``<prefix>.md.>`` (created by the first worker if absent)."""
    max_age_s: Seconds = Field(86_400.0, gt=0, le=30 * DAY_S)
    max_bytes: Int = Field(1024**3, ge=1024**2, le=1024**4)
    replicas: Int = Field(1, ge=1, le=5)
    lease_bucket: str = "polybot-leases"
    """The JetStream key-value bucket holding one lease per shard (which worker is active)."""
    lease_ttl_s: Seconds = Field(3.0, ge=1, le=60)
    """A lease not renewed for this long is taken over by a standby (renewed every third of it)."""
    shard: str = ""
    """``I/N``: the shard a ``polybot feed-worker`` serves when ``--shard`` is not given."""
    request_timeout_s: Seconds = Field(2.0, gt=0, le=60)
    """How long a reader waits for a worker's snapshot answer before asking again."""

    @field_validator("url")
    @classmethod
    def _urls(cls, value: str) -> str:
        value = value.strip()
        for part in value.split(","):
            parts = urlsplit(part.strip())
            if parts.scheme not in ("nats", "tls") or not parts.netloc:
                raise ValueError("must be nats://host:port or tls://host:port (several separated by commas)")
        return value

    @field_validator("stream", "lease_bucket")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("letters, digits, '-' and '_' only")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.fullmatch(value):
            raise ValueError("subject tokens (letters, digits, '-', '_') separated by dots")
        return value

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str) -> str:
        value = value.replace(" ", "")
        if value:
            if not _SHARD.fullmatch(value):
                raise ValueError('must be "I/N", e.g. "0/2"')
            index, count = (int(x) for x in value.split("/"))
            if count < 1 or index >= count:
                raise ValueError("need 0 <= I < N")
        return value

    @property
    def servers(self) -> list[str]:
        return [p.strip() for p in self.url.split(",")]
