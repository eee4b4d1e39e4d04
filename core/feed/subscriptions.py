"""Which socket carries which asset when the followed set changes while the feed runs.

The market channel takes ``{"operation":"subscribe"|"unsubscribe","assets_ids":[...]}`` on a live
socket, so a change never needs a reconnect. :func:`plan` turns the desired set into per-socket
operations: assets that left are unsubscribed where they are, new ones go to sockets with room
(at most ``per_connection`` each, lowest connection first), new sockets open only when every
socket is full, and a socket left with nothing is closed. Assets that stay never move: moving
one would cost its book a fresh snapshot for nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True, slots=True)
class Plan:
    remove: dict[int, list[str]] = field(default_factory=dict)  # connection -> assets to unsubscribe
    add: dict[int, list[str]] = field(default_factory=dict)  # connection -> assets to subscribe
    new: list[tuple[str, ...]] = field(default_factory=list)  # groups for new connections
    close: list[int] = field(default_factory=list)  # connections left with nothing

    @property
    def empty(self) -> bool:
        return not (self.remove or self.add or self.new or self.close)


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """What one change did: assets added and removed, sockets opened and closed."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    opened: int = 0
    closed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def plan(held: Mapping[int, Sequence[str]], desired: Sequence[str], per_connection: int) -> Plan:
    """The operations that take the sockets' ``held`` assets to ``desired``; see the module docstring."""
    if per_connection < 1:
        raise ValueError("max_assets_per_connection must be >= 1")
    want = dict.fromkeys(desired)
    remove: dict[int, list[str]] = {}
    kept: dict[int, int] = {}
    holding: set[str] = set()
    for conn_id, assets in held.items():
        gone = [a for a in assets if a not in want]
        if gone:
            remove[conn_id] = gone
        kept[conn_id] = len(assets) - len(gone)
        holding.update(assets)
    missing = [a for a in want if a not in holding]
    add: dict[int, list[str]] = {}
    for conn_id in sorted(kept):
        room = per_connection - kept[conn_id]
        if room > 0 and missing:
            add[conn_id], missing = missing[:room], missing[room:]
            kept[conn_id] += len(add[conn_id])
    new = [tuple(missing[i : i + per_connection]) for i in range(0, len(missing), per_connection)]
    close = [conn_id for conn_id, n in sorted(kept.items()) if n == 0]
    return Plan(remove, add, new, close)


def operation_message(operation: str, asset_ids: Sequence[str], *, custom_feature_enabled: bool = True) -> str:
    """A subscribe or unsubscribe on a live market-channel socket, as the venue expects it."""
    body: dict[str, object] = {"operation": operation, "assets_ids": list(asset_ids)}
    if operation == SUBSCRIBE:
        body["custom_feature_enabled"] = custom_feature_enabled
    return json.dumps(body, separators=(",", ":"))
