"""The market-data messages on the bus: one msgspec Struct per kind, MessagePack on the wire.

Every message names its market (``condition``) and token (``asset``) and carries:

- ``epoch``: the publishing worker's epoch (the revision of the shard lease it holds; it grows on
  every takeover). Messages of an older epoch than one already seen for the asset are ignored: a
  worker that lost its lease can never overwrite its successor's books.
- ``seq``: the per-asset sequence number within the epoch, 1, 2, 3 ... over every kind published
  for the asset (a lost trade print is a gap too). A snapshot answered on request carries the
  ``seq`` of the last message published for the asset before it (0: none yet).
- ``ts_ms`` (the venue's event time), ``recv_ns`` (when the worker received the frame) and
  ``pub_ns`` (when the worker published the message; latency = the reader's clock - ``pub_ns``).

Money is exact, as the feed carries it (:mod:`core.feed.events`): book levels, trades and best
prices in 10^-6 integer units; a delta's levels in the venue's validated decimal strings (what
the feed applies and stores); tick sizes as decimal strings. Nothing is a float.

A message is encoded with :func:`encode` and read back with :func:`decode` (the kind is the
``k`` tag); the subject it travels on is :func:`core.bus.subjects.md_subject`.
"""

from __future__ import annotations

from typing import Final, TypeVar

import msgspec

LevelUnits = tuple[int, int]
"""(price_units, size_units) of one level, 10^-6 units (as :data:`core.feed.events.LevelUnits`)."""


class _Md(msgspec.Struct, frozen=True, tag_field="k", kw_only=True):
    condition: str
    asset: str
    epoch: int
    seq: int
    ts_ms: int = 0
    recv_ns: int = 0
    pub_ns: int = 0


class Snapshot(_Md, frozen=True, tag="snapshot", kw_only=True):
    """The book of ``asset`` in full. ``bids``/``asks`` best first. ``status`` is the worker's
    book status after it (a :class:`core.types.BookStatus` value): anything but ``ok`` means the
    worker itself has no trustworthy book (awaiting a snapshot, or crossed)."""

    bids: tuple[LevelUnits, ...]
    asks: tuple[LevelUnits, ...]
    tick_size: str
    status: str = "ok"
    hash: str = ""
    source: str = "ws"  # ws: a venue ``book`` event; rest: GET /book; request: answered on request


class DeltaLevel(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One accepted ``price_changes[]`` entry: the level's new absolute size (``"0"`` = gone),
    with the best prices the venue carried on it (None: not carried; ``""``: that side empty)."""

    side: str  # BUY (bid) or SELL (ask)
    price: str
    size: str
    best_bid: str | None = None
    best_ask: str | None = None


class Delta(_Md, frozen=True, tag="delta", kw_only=True):
    """The accepted level updates of one ``price_change`` for this asset, in the venue's order."""

    levels: tuple[DeltaLevel, ...]


class Trade(_Md, frozen=True, tag="trade", kw_only=True):
    """A ``last_trade_price`` print (``side`` is the taker's)."""

    side: str
    price_units: int
    size_units: int
    fee_rate_bps: int = 0
    transaction_hash: str = ""


class BestPrices(_Md, frozen=True, tag="best", kw_only=True):
    """``best_bid_ask``; None: that side is empty."""

    best_bid_units: int | None
    best_ask_units: int | None


class TickSize(_Md, frozen=True, tag="tick", kw_only=True):
    """``tick_size_change``: the book starts a new (book) epoch and waits for a snapshot."""

    old_tick: str | None
    new_tick: str


class Status(_Md, frozen=True, tag="status", kw_only=True):
    """The worker's book changed status (``old``/``new`` are :class:`core.types.BookStatus` values)."""

    old: str
    new: str
    reason: str


class Resolved(_Md, frozen=True, tag="resolved", kw_only=True):
    """``market_resolved``: published once on each asset of the market (each with its own seq)."""

    asset_ids: tuple[str, ...]
    winning_asset_id: str
    winning_outcome: str


MdMessage = Snapshot | Delta | Trade | BestPrices | TickSize | Status | Resolved

KINDS: Final[dict[type[MdMessage], str]] = {
    Snapshot: "snapshot",
    Delta: "delta",
    Trade: "trade",
    BestPrices: "best",
    TickSize: "tick",
    Status: "status",
    Resolved: "resolved",
}
"""Each message type's ``kind``: its tag and the last token of its subject."""


# --------------------------------------------------------------------------- request / reply


class SnapshotRequest(msgspec.Struct, frozen=True):
    """Asked on :func:`core.bus.subjects.snapshot_subject` by a reader that lost continuity."""

    asset: str
    requester: str = ""


class SnapshotReply(msgspec.Struct, frozen=True):
    """The owning worker's answer: its current book (``snapshot``, whose ``seq`` is the last one
    published for the asset: apply the stream's messages after it), or why there is none."""

    snapshot: Snapshot | None = None
    error: str = ""


class Heartbeat(msgspec.Struct, frozen=True):
    """The active worker of a shard, every second on :func:`core.bus.subjects.heartbeat_subject`.

    ``seqs``: the last ``seq`` of each asset that published since the previous beat. A reader
    that, a beat later, has still not applied that much has lost the asset's last message(s)
    (a gap no later message would reveal on a quiet market) and resnapshots it."""

    worker: str
    shard: str  # the lease's shard label: "0of2", or "assets-<digest>" for an explicit asset set
    epoch: int
    assets: int
    pub_ns: int
    seqs: dict[str, int] = {}


class Lease(msgspec.Struct, frozen=True):
    """The value of a shard's lease key in the KV bucket (who holds it, since when)."""

    worker: str
    shard: str
    since_ns: int


# --------------------------------------------------------------------------- codec

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(MdMessage)


def encode(message: object) -> bytes:
    """Any message of this module as MessagePack bytes."""
    return _ENCODER.encode(message)


def decode(data: bytes) -> MdMessage:
    """One market-data message; raises ``msgspec.DecodeError``/``ValidationError`` on bad bytes."""
    message: MdMessage = _DECODER.decode(data)
    return message


T = TypeVar("T")


def decode_as(data: bytes, kind: type[T]) -> T:
    """A request, reply, heartbeat or lease of type ``kind``."""
    return msgspec.msgpack.decode(data, type=kind)
