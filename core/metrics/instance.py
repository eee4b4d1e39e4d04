"""A process's identity in its metrics: ``polybot_instance_info{role, identity} 1``.

Several Polybot processes (the service, feed workers, recorders) run side by side, on one host or
many. Prometheus tells its targets apart by address (its ``instance`` label); the identity says
who is behind an address in words a person chose: ``metrics.instance`` in the configuration, or by
default ``ROLE@HOSTNAME:PORT`` (``recorder@md-2:9112``), the port being the one ``/metrics`` is
served on. The dashboard joins on it for its per-instance panels.
"""

from __future__ import annotations

import re
import socket

ROLES = ("service", "feed-worker", "recorder", "metrics")
_IDENTITY_CHARS = re.compile(r"[^A-Za-z0-9_.:@/-]+")
MAX_IDENTITY = 128


def identity_label(text: str) -> str:
    """``text`` as a safe label value: odd characters become ``_``; empty becomes ``unknown``."""
    value = _IDENTITY_CHARS.sub("_", text.strip())[:MAX_IDENTITY].strip("_")
    return value or "unknown"


def instance_identity(configured: str, role: str, port: int, hostname: str | None = None) -> str:
    """The configured identity, or ``ROLE@HOSTNAME:PORT``."""
    if configured.strip():
        return identity_label(configured)
    host = hostname if hostname is not None else socket.gethostname()
    return identity_label(f"{role}@{host}:{port}")
