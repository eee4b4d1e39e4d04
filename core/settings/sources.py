"""The layers of the configuration, read by pydantic-settings' sources, merged with their provenance.

- :class:`TomlFile` is pydantic-settings' TOML source for one file, with numbers that have a
  fraction read as ``Decimal`` (money keeps the digits the operator wrote) and the text kept so
  that a problem can name its line.
- :class:`EnvVariables` is pydantic-settings' environment source (``POLYBOT_`` prefix, ``__``
  nesting, names in any case) over a given mapping, with JSON numbers read as ``Decimal`` and a
  list also accepted comma-separated (``POLYBOT_FEED__ASSETS=111,222``).

What the library does not do, and this module adds: the layer that set each key (``config
show`` names it, preflight checks where secrets come from), every bad variable reported with
its name instead of stopping at the first, and a variable naming no setting reported as an
unknown key instead of being ignored. For that the environment source reads one variable at a
time.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, SettingsError, TomlConfigSettingsSource

from core.settings.root import ENV_PREFIX, ENV_SEPARATOR, Settings
from core.settings.walk import is_list

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


class TomlFile(TomlConfigSettingsSource):
    """One TOML file. Raises ``OSError``, ``UnicodeDecodeError`` or ``tomllib.TOMLDecodeError``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        super().__init__(Settings, toml_file=path)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        # Decimal, not float: money keys must keep the digits the operator wrote.
        return tomllib.loads(self.text, parse_float=Decimal)


class EnvVariables(EnvSettingsSource):
    """The ``POLYBOT_<SECTION>__<KEY>`` variables of ``variables`` (not ``os.environ``)."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self.variables = dict(variables)
        super().__init__(Settings, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self.variables.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        text = str(value).strip()
        if text.startswith(("[", "{")):
            try:
                return json.loads(text, parse_float=Decimal)
            except json.JSONDecodeError as exc:  # its message has a position, never the value
                raise ValueError(f"not valid JSON: {exc}") from None
        if is_list(field):
            return [item.strip() for item in text.split(",") if item.strip()]
        return value  # validation says what the value should have been


@dataclass(frozen=True)
class Layer:
    label: str
    """``file:<path>`` | ``secrets:<path>`` | ``env:<NAME>``: the provenance of every key it sets."""
    data: Mapping[str, object]
    text: str = ""
    """The TOML text, to find the line of a key."""


def read_toml(path: Path, kind: str, problems: list[str]) -> Layer | None:
    """The layer of one TOML file (``kind`` is ``file`` or ``secrets``), or None with a problem."""
    try:
        source = TomlFile(path)
    except FileNotFoundError:
        problems.append(f"{path}: config file not found")
        return None
    except tomllib.TOMLDecodeError as exc:  # the message has a line and column, never the text
        problems.append(f"{path}: invalid TOML syntax: {exc}")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read config file: {exc}")
        return None
    return Layer(f"{kind}:{path}", source(), source.text)


def read_environment(environ: Mapping[str, str], problems: list[str]) -> list[Layer]:
    """One layer per ``POLYBOT_<SECTION>__<KEY>`` variable, whole sections before their keys (so
    ``POLYBOT_STRATEGIES__DUTCH={...}`` does not wipe ``POLYBOT_STRATEGIES__DUTCH__MAX_SETS``)."""
    found: list[tuple[int, Layer]] = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if ENV_SEPARATOR not in rest:
            continue  # POLYBOT_REQUIRE_PG and friends are not settings
        parts = [part.lower() for part in rest.split(ENV_SEPARATOR)]
        if not all(parts):
            problems.append(f"env {name}: malformed name (expected POLYBOT_<SECTION>__<KEY>)")
            continue
        try:
            data = EnvVariables({name: environ[name]})()
        except SettingsError as exc:
            reason = exc.__cause__ if isinstance(exc.__cause__, ValueError) else exc
            problems.append(f"env {name}: {'.'.join(parts)}: {reason}")
            continue
        # The library skips a variable that names no setting; kept, the model reports the unknown key.
        found.append((len(parts), Layer(f"env:{name}", data or _nest(parts, environ[name]))))
    found.sort(key=lambda item: item[0])
    return [layer for _, layer in found]


def _nest(parts: list[str], value: object) -> dict[str, object]:
    out: dict[str, object] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


class Merged:
    """Layers merged in order (later wins, tables merge deeply), remembering which one set each key."""

    def __init__(self, layers: list[Layer]) -> None:
        self.data: dict[str, object] = {}
        self.origin: dict[str, str] = {}
        """Dotted key (as written, a table or a leaf) -> the label of the layer that set it."""
        self.texts: dict[str, str] = {layer.label: layer.text for layer in layers if layer.text}
        for layer in layers:
            self._overlay(self.data, layer.data, layer.label)

    def _overlay(self, dst: dict[str, object], src: Mapping[str, object], label: str, prefix: str = "") -> None:
        for key, value in src.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping):
                table = dst.get(key)
                if not isinstance(table, dict):
                    self._forget(dotted)
                    table = dst[key] = {}
                self._overlay(table, value, label, dotted + ".")
            else:
                self._forget(dotted)
                dst[key] = value
                self.origin[dotted] = label

    def _forget(self, dotted: str) -> None:
        self.origin.pop(dotted, None)
        for key in [k for k in self.origin if k.startswith(dotted + ".")]:
            del self.origin[key]

    def source_of(self, key: str) -> str | None:
        """The label of the layer that set ``key``, a table containing it, or a key inside it."""
        probe = key
        while probe:
            if probe in self.origin:
                return self.origin[probe]
            probe = probe.rpartition(".")[0]
        for candidate, label in self.origin.items():
            if candidate.startswith(key + "."):
                return label
        return None
