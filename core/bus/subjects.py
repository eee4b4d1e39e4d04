"""Subject names, the stream and the lease bucket of the market-data bus (one place for all of them).

With the default ``prefix`` ``"polybot"``:

- ``polybot.md.<condition>.<asset>.<kind>``: market data (:mod:`core.bus.messages`; ``kind`` is
  snapshot, delta, trade, best, tick, status or resolved). The stream captures ``polybot.md.>``.
- ``polybot.snap.<asset>``: snapshot requests (request/reply; only the active worker that owns
  the asset answers).
- ``polybot.hb.<shard>``: the active workers' heartbeats (not stored).
- lease keys ``feed.<shard>`` (``feed.0of2``, ``feed.assets-<digest>``) in the KV bucket.

Condition ids (``0x`` + hex) and asset ids (decimal digits) are valid subject tokens as they are;
anything else is refused by :func:`token`, never silently rewritten into another market's subject.
A test gives each run its own ``prefix``, stream and bucket, so runs never share subjects.
"""

from __future__ import annotations

import re
from typing import Final

from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig

KINDS: Final = ("snapshot", "delta", "trade", "best", "tick", "status", "resolved")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_\-]+")
_KEY: Final = re.compile(r"[A-Za-z0-9_\-=/.]+")


def token(value: str) -> str:
    """``value`` as one subject token; raises ValueError for an empty value or one with a dot,
    space, wildcard or other character a subject token may not hold."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"not a subject token: {value!r}")
    return value


def md_subject(prefix: str, condition: str, asset: str, kind: str) -> str:
    return f"{prefix}.md.{token(condition)}.{token(asset)}.{kind}"


def md_wildcard(prefix: str) -> str:
    """Everything the stream holds."""
    return f"{prefix}.md.>"


def asset_wildcard(prefix: str, asset: str, condition: str | None = None) -> str:
    """Every kind of one asset (``condition`` None: whatever market it is in)."""
    return f"{prefix}.md.{'*' if condition is None else token(condition)}.{token(asset)}.*"


def parse_md_subject(prefix: str, subject: str) -> tuple[str, str, str] | None:
    """(condition, asset, kind) of a market-data subject, None for any other subject."""
    head = f"{prefix}.md."
    if not subject.startswith(head):
        return None
    parts = subject[len(head) :].split(".")
    if len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2]


def snapshot_subject(prefix: str, asset: str) -> str:
    return f"{prefix}.snap.{token(asset)}"


def snapshot_wildcard(prefix: str) -> str:
    return f"{prefix}.snap.*"


def heartbeat_subject(prefix: str, shard: str) -> str:
    return f"{prefix}.hb.{token(shard)}"


def heartbeat_wildcard(prefix: str) -> str:
    return f"{prefix}.hb.*"


def lease_key(shard: str) -> str:
    """The shard's key in the lease bucket (``shard`` as :func:`core.bus.shard.Shard.label`)."""
    key = f"feed.{shard}"
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a lease key: {key!r}")
    return key


def stream_config(name: str, prefix: str, *, max_age_s: float, max_bytes: int, replicas: int = 1) -> StreamConfig:
    """The market-data stream: every ``<prefix>.md.>`` message, file storage, bounded by age and
    bytes (the oldest messages go first), duplicates window off (sequence numbers identify)."""
    return StreamConfig(
        name=name,
        subjects=[md_wildcard(prefix)],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=max_age_s,
        max_bytes=max_bytes,
        num_replicas=replicas,
    )


def lease_bucket_config(bucket: str, *, ttl_s: float, replicas: int = 1) -> KeyValueConfig:
    """The lease bucket: one value per key (the holder), keys expire ``ttl_s`` after their last
    renewal (a dead holder's lease disappears by itself)."""
    return KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, storage=StorageType.FILE, replicas=replicas)
