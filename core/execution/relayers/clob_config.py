"""The CLOB relayer as the configuration describes it: one place that turns ``[relayer]`` and
``[clob]`` into a :class:`ClobRelayer` (the service, preflight's balance read and smoke-live)."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from core.execution.events import EventSink
from core.execution.relayers.clob import ClobRelayer
from core.settings import Settings


def clob_relayer(
    settings: Settings,
    *,
    dry_run: bool,
    with_creds: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout_s: float | None = None,
    events: EventSink | None = None,
    user_ws_url: str | None = None,
    user_markets: Iterable[str] = (),
    heartbeat_interval_s: float = 5.0,
) -> ClobRelayer:
    """A relayer signing with the configured key. ``with_creds=False`` leaves the API credentials
    out (signing needs none, and the body's owner field would otherwise carry the API key).
    ``events``: the sink the engine hears the relayer through (:mod:`core.execution.assembly`)."""
    r = settings.relayer
    if r.private_key is None:
        raise ValueError("relayer.private_key is not set")  # settings refuse type = "real" without one
    creds = None
    if with_creds and r.api_key and r.api_secret and r.api_passphrase:
        creds = (r.api_key.get_secret_value(), r.api_secret.get_secret_value(), r.api_passphrase.get_secret_value())
    return ClobRelayer(
        settings.clob.url,
        r.chain_id,
        r.private_key.get_secret_value(),
        signature_type=r.signature_type,
        funder=r.funder,
        api_creds=creds,
        dry_run=dry_run,
        timeout_s=settings.clob.timeout_s if timeout_s is None else timeout_s,
        transport=transport,
        events=events,
        user_ws_url=user_ws_url,
        user_markets=user_markets,
        heartbeat_interval_s=heartbeat_interval_s,
    )
