"""``polybot config show|check``: the effective configuration, with secrets masked and sources."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.settings import LoadedSettings
    from polybot.cli.main import Subcommands

_EXAMPLE_FILE = "config/service.example.toml"


def register(sub: Subcommands) -> None:
    from polybot.cli.main import add_command

    parser = add_command(
        sub,
        "config",
        help="show or check the configuration (TOML + secrets.local.toml + POLYBOT_* env)",
        example=f"polybot config show --config {_EXAMPLE_FILE}",
    )
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", parser_class=type(parser))

    show = add_command(
        actions,
        "show",
        help="print the effective configuration, secrets masked, with where each value came from",
        example=f"polybot config show --config {_EXAMPLE_FILE} --json",
    )
    _config_arg(show)
    show.add_argument("--json", action="store_true", help="print JSON: settings, sources and files used")
    show.set_defaults(func=_show)

    check = add_command(
        actions,
        "check",
        help="validate the configuration; exit 0 when valid (warning on stderr about a secret kept in the "
        "main file), 2 listing every problem",
        example=f"polybot config check --config {_EXAMPLE_FILE}",
    )
    _config_arg(check)
    check.add_argument("--json", action="store_true", help='print {"ok": ..., "problems": [...]}')
    check.set_defaults(func=_check)

    def _no_action(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=_no_action)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="service TOML (secrets.local.toml beside it is overlaid; POLYBOT_<SECTION>__<KEY> env wins); "
        "without it: defaults + env",
    )


def _render_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def _leaves(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_leaves(value, dotted + "."))
        else:
            out.append((dotted, value))
    return out


def _show(args: argparse.Namespace) -> int:
    from core.settings import load_settings

    loaded = load_settings(args.config)
    tree = loaded.settings.masked_dict()
    if args.json:
        payload = {
            "config_file": str(loaded.config_path) if loaded.config_path else None,
            "secrets_file": str(loaded.secrets_path) if loaded.secrets_path else None,
            "mode": loaded.settings.mode.value,
            "settings": tree,
            "sources": loaded.sources,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    sys.stdout.write(_table(loaded, tree))
    return 0


def _table(loaded: LoadedSettings, tree: dict[str, Any]) -> str:
    rows = [(key, _render_value(value), loaded.sources.get(key, "default")) for key, value in _leaves(tree)]
    key_w = max(len(r[0]) for r in rows)
    val_w = min(max(len(r[1]) for r in rows), 60)
    lines = [
        f"config file:  {loaded.config_path or '(none: defaults + environment)'}",
        f"secrets file: {loaded.secrets_path or '(none)'}",
        f"mode:         {loaded.settings.mode.value} (the service always starts disarmed)",
        "",
        f"{'KEY':<{key_w}}  {'VALUE':<{val_w}}  SOURCE",
    ]
    for key, value, source in rows:
        lines.append(f"{key:<{key_w}}  {value:<{val_w}}  {source}")
    return "\n".join(lines) + "\n"


def _check(args: argparse.Namespace) -> int:
    try:
        from core.settings import load_settings

        loaded = load_settings(args.config)
    except ConfigError as exc:
        if args.json:
            sys.stdout.write(json.dumps({"ok": False, "problems": exc.problems}, indent=2) + "\n")
        raise
    overridden = sorted({s for s in loaded.sources.values() if s.startswith("env:")})
    warnings = _misplaced_secret_warnings(loaded)
    for warning in warnings:  # stderr: stdout stays the verdict (or the JSON document)
        sys.stderr.write(f"polybot config: warning: {warning}\n")
    if args.json:
        payload = {
            "ok": True,
            "problems": [],
            "warnings": warnings,
            "config_file": str(loaded.config_path) if loaded.config_path else None,
            "secrets_file": str(loaded.secrets_path) if loaded.secrets_path else None,
            "env_overrides": [s.removeprefix("env:") for s in overridden],
            "mode": loaded.settings.mode.value,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    used = [str(p) for p in (loaded.config_path, loaded.secrets_path) if p is not None]
    detail = ", ".join(used) if used else "defaults only"
    if overridden:
        detail += f", {len(overridden)} environment override(s)"
    sys.stdout.write(f"config OK ({detail}); mode {loaded.settings.mode.value}\n")
    return 0


def _misplaced_secret_warnings(loaded: LoadedSettings) -> list[str]:
    """A valid configuration may still keep a secret where it does not belong (the main file):
    say so, naming the key and where it goes; preflight fails on it outside paper mode."""
    from core.settings import secret_location_advice, secrets_in_main_file

    return [secret_location_advice(loaded, [key]) for key in secrets_in_main_file(loaded)]
