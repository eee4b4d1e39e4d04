"""Which keys are secrets, which are set, and whether they sit where secrets belong.

Secrets belong in ``secrets.local.toml`` (chmod 600) or the environment, never the main service
file: that one is copied, shared, pasted into tickets, and often readable by every user.
"""

from __future__ import annotations

from pathlib import Path

from core.redact import url_password
from core.settings.load import SECRETS_FILENAME, LoadedSettings
from core.settings.root import ENV_PREFIX, ENV_SEPARATOR, Settings
from core.settings.walk import secret_fields

DB_URL_KEY = "db.url"


def set_secret_keys(settings: Settings) -> list[str]:
    """Dotted keys of the secrets that are set: secret fields, and ``db.url`` when it has a password."""
    keys = [key for key, value in secret_fields(settings) if value is not None]
    if url_password(settings.db.url):
        keys.append(DB_URL_KEY)
    return keys


def env_name(key: str) -> str:
    """The environment variable that sets a dotted key: ``relayer.api_secret`` -> ``POLYBOT_RELAYER__API_SECRET``."""
    return ENV_PREFIX + ENV_SEPARATOR.join(key.split(".")).upper()


def secrets_in_main_file(loaded: LoadedSettings) -> list[str]:
    """Set secrets whose value comes from the main service file rather than the secrets overlay
    or the environment."""
    return [key for key in set_secret_keys(loaded.settings) if loaded.sources.get(key, "").startswith("file:")]


def secret_location_advice(loaded: LoadedSettings, keys: list[str]) -> str:
    """One line naming misplaced secrets, the file they are in and where they belong."""
    where = loaded.config_path
    overlay = where.parent / SECRETS_FILENAME if where is not None else Path(SECRETS_FILENAME)
    names = ", ".join(f"{key} (it carries a password)" if key == DB_URL_KEY else key for key in keys)
    variables = ", ".join(env_name(key) for key in keys)
    one = len(keys) == 1
    return (
        f"{names} {'is' if one else 'are'} set in {where}, which is not for secrets: move "
        f"{'it' if one else 'them'} to {overlay} (beside the config, chmod 600) or to the environment "
        f"(variable{'' if one else 's'} {variables})"
    )
