"""What the market-channel client reports and sends: connection states and events, the
counters of :meth:`core.feed.ws.MarketFeed.stats`, the subscribe message and the split of the
assets over sockets.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FrameHandler = Callable[[str, int], object]
"""Called with each frame's text and receive time (ns); what it returns is not used."""


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DEAD = "dead"
    RECONNECTED = "reconnected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A state change of one socket. ``asset_ids`` are the assets that socket carries."""

    conn_id: int
    state: ConnectionState
    asset_ids: tuple[str, ...]
    reason: str = ""
    at_ns: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    conn_id: int
    state: ConnectionState
    asset_count: int
    frames: int
    bytes: int
    pongs: int
    reconnects: int
    dead_count: int
    last_frame_ns: int | None  # last market frame: its age is market quietness
    last_pong_ns: int | None  # last heartbeat answer: with frames, proves the socket alive
    last_reason: str


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Counters over all connections; ``dropped`` counts frames not delivered, by reason."""

    connections: tuple[ConnectionStats, ...]
    frames: int
    bytes: int
    pongs: int
    reconnects: int
    dead: int
    dropped: dict[str, int]
    callback_errors: int

    @property
    def live_connections(self) -> int:
        return sum(1 for c in self.connections if c.state is ConnectionState.CONNECTED)

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "bytes": self.bytes,
            "pongs": self.pongs,
            "reconnects": self.reconnects,
            "dead": self.dead,
            "dropped": dict(self.dropped),
            "callback_errors": self.callback_errors,
            "connections": [
                {
                    "conn_id": c.conn_id,
                    "state": c.state.value,
                    "assets": c.asset_count,
                    "frames": c.frames,
                    "bytes": c.bytes,
                    "pongs": c.pongs,
                    "reconnects": c.reconnects,
                    "dead": c.dead_count,
                    "last_frame_ns": c.last_frame_ns,
                    "last_pong_ns": c.last_pong_ns,
                    "last_reason": c.last_reason,
                }
                for c in self.connections
            ],
        }


def subscribe_message(asset_ids: Sequence[str], *, custom_feature_enabled: bool = True) -> str:
    """The market-channel subscribe message, exactly as the venue expects it."""
    return json.dumps(
        {"type": "market", "assets_ids": list(asset_ids), "custom_feature_enabled": custom_feature_enabled},
        separators=(",", ":"),
    )


def split_assets(asset_ids: Sequence[str], per_connection: int) -> list[tuple[str, ...]]:
    """De-duplicate (keeping order) and cut into groups of at most ``per_connection``."""
    if per_connection < 1:
        raise ValueError("max_assets_per_connection must be >= 1")
    unique = list(dict.fromkeys(asset_ids))
    return [tuple(unique[i : i + per_connection]) for i in range(0, len(unique), per_connection)]
