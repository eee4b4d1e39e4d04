"""The NATS connection, the market-data stream and the lease bucket (created when absent).

Everything NATS-protocol is the official client's (``nats-py``); this module only says how Polybot
uses it: reconnect forever (a bus outage is waited out, never a crash), a clear error when no
server answers at start, the stream's limits kept as configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from core.bus.subjects import lease_bucket_config, stream_config
from core.redact import mask_url_password
from core.settings import BusSettings

log = logging.getLogger(__name__)


class BusUnavailable(Exception):
    """No NATS server answered (the message names the URL, password masked)."""


async def connect(
    settings: BusSettings,
    name: str,
    *,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    connect_timeout_s: float = 2.0,
) -> Client:
    """A connection to ``[bus] url`` that reconnects forever once up; raises :class:`BusUnavailable`
    when no server answers at start."""
    up = False

    async def log_error(exc: Exception) -> None:
        if up:  # before that, the one BusUnavailable below says it
            log.warning("NATS: %s: %s", type(exc).__name__, exc)

    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": name,
        "connect_timeout": connect_timeout_s,
        "reconnect_time_wait": 0.5,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
        "error_cb": log_error,
    }
    if on_disconnect is not None:
        options["disconnected_cb"] = on_disconnect
    if on_reconnect is not None:
        options["reconnected_cb"] = on_reconnect
    try:
        # nats-py retries a first connection forever when reconnects are unlimited: bound it
        nc = await asyncio.wait_for(nats.connect(**options), connect_timeout_s * 2 + 1)
    except Exception as exc:
        where = ", ".join(mask_url_password(u) for u in settings.servers)
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise BusUnavailable(f"no NATS server answers at {where} ({why})") from exc
    up = True
    return nc


async def ensure_stream(js: JetStreamContext, settings: BusSettings) -> None:
    """Create the market-data stream, or bring an existing one's limits to the configured ones."""
    config = stream_config(
        settings.stream,
        settings.prefix,
        max_age_s=settings.max_age_s,
        max_bytes=settings.max_bytes,
        replicas=settings.replicas,
    )
    try:
        await js.stream_info(settings.stream)
    except NotFoundError:
        await js.add_stream(config)
        log.info("bus: stream %s created (%s)", settings.stream, config.subjects)
        return
    await js.update_stream(config)


async def lease_bucket(js: JetStreamContext, settings: BusSettings) -> KeyValue:
    """The lease bucket, created when absent."""
    try:
        return await js.key_value(settings.lease_bucket)
    except BucketNotFoundError:
        config = lease_bucket_config(settings.lease_bucket, ttl_s=settings.lease_ttl_s * 4, replicas=settings.replicas)
        return await js.create_key_value(config)
