"""``--config FILE`` for the tools that otherwise take the venue's URLs on the command line.

``record-ws``, ``ingest-ws``, ``quoter-run-ws``, ``refresh-markets``, ``relayer-dry-run`` and the
approvals read what a running service would use from its configuration, loaded exactly as
``run-service`` loads it (:func:`core.settings.load_settings`: the TOML, ``secrets.local.toml``
beside it, ``POLYBOT_<SECTION>__<KEY>`` variables). What is given on the command line wins. So
``polybot ingest-ws --config var/sandbox/service.toml`` follows what the sandbox's service follows,
and ``--config config/service.toml`` what yours does. Without ``--config`` nothing is read.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from core.errors import UsageError

if TYPE_CHECKING:  # pydantic loads only when a command runs with --config
    from core.settings import Settings


def add_config(p: argparse.ArgumentParser, what: str) -> None:
    """``--config FILE``: ``what`` (the settings it supplies, in words) come from it unless given."""
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"service TOML (secrets.local.toml beside it and POLYBOT_<SECTION>__<KEY> apply): {what} "
        "from it unless given on the command line",
    )


def settings_of(args: argparse.Namespace) -> Settings | None:
    """The settings of ``--config`` (None without it); a bad file is a ConfigError (exit 2)."""
    path: str | None = getattr(args, "config", None)
    if not path:
        return None
    from core.settings import load_settings

    return load_settings(path).settings


def feed_assets(settings: Settings) -> list[str]:
    """What the configured feed subscribes: the named markets' outcomes (from the configured
    database), then ``feed.assets`` -- the preflight's feed check's list, one source of truth."""
    from core.preflight.probes import feed_subscription

    assets, configured = asyncio.run(feed_subscription(settings))
    if not assets:
        raise UsageError(
            f"the configuration follows nothing ({configured}): name markets in [feed] markets, or give asset ids"
        )
    return assets


def need_url(url: str | None, what: str) -> str:
    """``url``, or a usage error saying to give it or ``--config``."""
    if not url:
        raise UsageError(f"give the {what}, or --config FILE to take it from a service TOML")
    return url
