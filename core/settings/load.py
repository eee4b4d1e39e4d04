"""Loading: defaults -> the service TOML -> ``secrets.local.toml`` beside it -> ``POLYBOT_*`` env.

Every problem is collected before anything is reported: :func:`load_settings` raises one
:class:`core.errors.ConfigError` listing them all.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from core.errors import ConfigError
from core.redact import register_secret
from core.settings.problems import describe
from core.settings.root import Settings
from core.settings.sources import Layer, Merged, read_environment, read_toml
from core.settings.walk import field_at, is_secret, leaf_keys

_log = logging.getLogger(__name__)

SECRETS_FILENAME = "secrets.local.toml"


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str]
    """Dotted leaf key -> ``default`` | ``file:<path>`` | ``secrets:<path>`` | ``env:<NAME>``."""
    config_path: Path | None = None
    secrets_path: Path | None = None


def load_settings(config_path: str | Path | None, *, env: Mapping[str, str] | None = None) -> LoadedSettings:
    """Defaults -> ``config_path`` -> ``secrets.local.toml`` beside it -> ``POLYBOT_*`` env
    (``env``, else ``os.environ``). Raises :class:`ConfigError` listing every problem found."""
    problems: list[str] = []
    layers: list[Layer] = []
    path = Path(config_path) if config_path is not None else None
    secrets_path = _secrets_beside(path) if path is not None else None
    if path is not None:
        layers += _present(read_toml(path, "file", problems))
    if secrets_path is not None:
        _warn_if_readable_by_others(secrets_path)
        overlay = read_toml(secrets_path, "secrets", problems)
        if overlay is not None:
            _register_raw_secrets(overlay.data)
        layers += _present(overlay)
    layers += read_environment(os.environ if env is None else env, problems)

    merged = Merged(layers)
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(merged.data)
    except ValidationError as exc:
        problems += describe(exc, merged)
    if problems or settings is None:
        raise ConfigError(problems)
    sources = {key: merged.source_of(key) or "default" for key in leaf_keys(settings)}
    return LoadedSettings(settings=settings, sources=sources, config_path=path, secrets_path=secrets_path)


def _present(layer: Layer | None) -> list[Layer]:
    return [] if layer is None else [layer]


def _secrets_beside(path: Path) -> Path | None:
    candidate = path.parent / SECRETS_FILENAME
    if candidate.is_file() and candidate.resolve() != path.resolve():
        return candidate
    return None


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warning("secrets file %s is readable by other users; run: chmod 600 %s", path, path)


def _register_raw_secrets(data: Mapping[str, object], prefix: tuple[str, ...] = ()) -> None:
    """Mask secret-looking strings of the secrets file even when the file fails validation."""
    for key, value in data.items():
        parts = (*prefix, key)
        if isinstance(value, Mapping):
            _register_raw_secrets(value, parts)
        elif isinstance(value, str):
            info = field_at(Settings, parts)
            # Unknown keys (likely misspelt secrets) count as secrets too.
            if info is None or is_secret(info):
                register_secret(value.strip())
