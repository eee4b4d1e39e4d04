"""``polybot relayer-api-creds``: derive the CLOB API credentials (L2 auth) of the configured key and
put them in the secrets file beside the configuration."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import PolybotError, UsageError
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from core.settings import LoadedSettings
    from polybot.cli.main import Subcommands

KEYS = ("api_key", "api_secret", "api_passphrase")

_DESCRIPTION = """\
Derive the CLOB API credentials of relayer.private_key with L1 auth (the venue's
GET /auth/derive-api-key, or POST /auth/api-key the first time), at clob.url, and write them as
relayer.api_key, api_secret and api_passphrase into the secrets.local.toml beside the
configuration (created chmod 600 when missing; other lines are kept). The same key always
derives the same credentials. Nothing secret is printed; --print prints the three TOML lines
instead of writing them (for keeping secrets in environment variables: POLYBOT_RELAYER__API_KEY ...).

The key comes from the configuration as the service reads it: in the secrets file,
  [relayer]
  private_key = "<YOUR_PRIVATE_KEY>"      # 0x and 64 hex digits
or POLYBOT_RELAYER__PRIVATE_KEY. A placeholder or a malformed key is refused with the file and
line; nothing is sent.

Try it on the sandbox (polybot sandbox running in another terminal): its CLOB double derives
them for the sandbox's throwaway key."""


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "relayer-api-creds",
        help="derive the CLOB API credentials of the configured key into secrets.local.toml",
        description=_DESCRIPTION,
        example="polybot relayer-api-creds --config var/sandbox/service.toml  # while polybot sandbox runs",
    )
    p.add_argument("--config", required=True, help="service TOML (secrets.local.toml next to it is overlaid)")
    p.add_argument("--print", action="store_true", help="print the three lines instead of writing them")
    p.set_defaults(func=_run)


def set_keys(text: str, table: str, values: dict[str, str]) -> str:
    """``text`` (TOML) with ``key = "value"`` lines for ``values`` in ``[table]``: existing lines of
    those keys replaced, missing ones added at the end of the table (the table added if missing)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == f"[{table}]"), None)
    if start is None:
        lines += ([""] if lines and lines[-1].strip() else []) + [f"[{table}]"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # new keys go before the blank lines that end the table
    for key, value in values.items():
        line = f"{key} = {json.dumps(value)}"
        found = next((i for i in range(start + 1, end) if re.match(rf"\s*{key}\s*=", lines[i])), None)
        if found is None:
            lines.insert(end, line)
            end += 1
        else:
            lines[found] = line
    return "\n".join(lines) + "\n"


def _secrets_path(loaded: LoadedSettings) -> Path:
    from core.settings import SECRETS_FILENAME

    assert loaded.config_path is not None
    return loaded.config_path.parent / SECRETS_FILENAME


def _load(config: str) -> LoadedSettings:
    from core.settings import load_settings

    if not Path(config).is_file():
        raise UsageError(f"config file not found: {config}")
    loaded = load_settings(config)
    if loaded.settings.relayer.private_key is None:
        raise UsageError(
            f'relayer.private_key is not set: put private_key = "<YOUR_PRIVATE_KEY>" (0x and 64 hex digits) '
            f"under [relayer] in {_secrets_path(loaded)}, or set POLYBOT_RELAYER__PRIVATE_KEY"
        )
    return loaded


async def _derive(loaded: LoadedSettings) -> tuple[str, dict[str, str]]:
    from core.execution.relayers.clob_config import clob_relayer
    from core.execution.relayers.clob_http import VenueError

    relayer = clob_relayer(loaded.settings, dry_run=True, with_creds=False)
    try:
        creds = await relayer.derive_api_creds()
    except VenueError as exc:
        raise PolybotError(f"the CLOB at {loaded.settings.clob.url} did not derive them: {exc}") from None
    finally:
        await relayer.close()
    values = {"api_key": creds.api_key, "api_secret": creds.api_secret, "api_passphrase": creds.api_passphrase}
    return relayer.address, values


def _run(args: argparse.Namespace) -> int:
    from core.settings import load_settings

    loaded = _load(args.config)
    address, values = asyncio.run(_derive(loaded))
    where = loaded.settings.clob.url
    if args.print:
        sys.stderr.write(f"API credentials of {address} at {where}: put these lines under [relayer] (secret)\n")
        sys.stdout.write("".join(f"{key} = {json.dumps(values[key])}\n" for key in KEYS))
        return 0
    from polybot.settings_files import write_private

    named = _secrets_path(loaded)
    path = Path(os.path.realpath(named))  # through a link: the file it points at
    existed = path.is_file()
    before = path.read_text() if existed else ""
    write_private(path, set_keys(before, "relayer", values))
    try:
        load_settings(args.config)  # the file still loads, now with the credentials
    except Exception:
        if existed:
            write_private(path, before)
        else:
            path.unlink()
        raise
    sys.stdout.write(f"wrote relayer.{', '.join(KEYS)} of {address} (derived at {where}) to {named}\n")
    return 0
