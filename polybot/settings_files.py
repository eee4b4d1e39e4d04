"""Settings written out as a person would keep them: ``service.toml`` and, beside it, the secrets
in ``secrets.local.toml`` (chmod 600), which :func:`core.settings.load_settings` overlays.

The values (``section__key`` -> value, as :mod:`polybot.sandbox` builds them for the doubles)
are first read by the product's own loader, so each is written with its real type (a number, a
boolean, a list of users), and a value the settings would refuse is refused here, before any
file is written. Which keys go to the secrets file is the settings' own list of secret fields.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, SecretStr

from core.settings import SECRETS_FILENAME, LoadedSettings, Settings, load_settings
from core.settings.walk import secret_fields

SERVICE_FILENAME = "service.toml"


def _toml(value: object) -> str:
    """One TOML value (inline form)."""
    if isinstance(value, SecretStr):
        return _toml(value.get_secret_value())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return _toml(value.value)
    if isinstance(value, BaseModel):
        return _toml(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key} = {_toml(v)}" for key, v in value.items()) + " }"
    if isinstance(value, Iterable) and not isinstance(value, str):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def _typed(settings: Settings, dotted: str) -> object:
    value: object = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _tables(keys: Iterable[str], settings: Settings) -> str:
    """``[section]`` tables (nested ones as ``[strategies.dutch]``) holding ``keys``, in the order given."""
    tables: dict[str, list[str]] = {}
    for dotted in keys:
        table, _, name = dotted.rpartition(".")
        tables.setdefault(table, []).append(f"{name} = {_toml(_typed(settings, dotted))}")
    return "\n".join(f"[{table}]\n" + "\n".join(lines) + "\n" for table, lines in tables.items())


def write_settings_files(
    values: Mapping[str, object], directory: Path, *, header: str, secrets_header: str
) -> LoadedSettings:
    """``directory/service.toml`` and ``directory/secrets.local.toml`` holding ``values``; returns
    them loaded as a service would load them (the files only: no ``POLYBOT_*`` variable applies)."""
    from polybot.sandbox import environment

    checked = load_settings(None, env=environment(values)).settings  # every value typed and checked
    secret = {key for key, _ in secret_fields(Settings())}
    keys = [key.replace("__", ".") for key in values]
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / SERVICE_FILENAME
    config.write_text(header + "\n" + _tables([k for k in keys if k not in secret], checked))
    write_private(
        directory / SECRETS_FILENAME, secrets_header + "\n" + _tables([k for k in keys if k in secret], checked)
    )
    return load_settings(config, env={})


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only, in one step.

    The text goes to a new file beside it (mode 600 from its creation: ``mkstemp``), is flushed
    to disk and renamed over the old one: a crash, a full disk or an error leaves the old file or
    the new one, never half of either, and the secrets are never readable by others meanwhile.
    A ``path`` that is a symbolic link is written through it: its target is replaced, the link
    stays (a secrets file kept elsewhere is not copied beside the config)."""
    path = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
