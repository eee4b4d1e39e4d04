"""What building the CLI's parser loads: every `polybot` run pays for it before doing anything.

The defaults a parser names (database URL, venue addresses, Gamma's page cap) come from
``core.defaults``, a module of plain constants, so that `polybot --help` loads neither the
settings models (pydantic, ~0.2 s) nor the Gamma client (httpx, ~0.15 s).
"""

from __future__ import annotations

import json
import sys

from tests.procs import run

_PROBE = """
import json, sys
from polybot.cli.main import build_parser
build_parser()
print(json.dumps(sorted(sys.modules)))
"""

HEAVY = ("pydantic", "pydantic_settings", "httpx", "core.settings", "core.markets")


def test_building_the_parser_loads_neither_the_settings_models_nor_the_gamma_client() -> None:
    done = run([sys.executable, "-c", _PROBE], timeout_s=60.0, check=True, text=True)
    loaded = set(json.loads(done.stdout))
    assert "core.defaults" in loaded  # the probe saw the parser's defaults being read
    assert sorted(loaded.intersection(HEAVY)) == []
