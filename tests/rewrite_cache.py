"""pytest's assertion-rewritten test modules, written to its cache once before the workers start.

pytest rewrites every test module's ``assert`` statements when it imports it and keeps the result
in ``__pycache__`` (``*.cpython-311-pytest-<version>.pyc``, keyed by a hash of the source) — but
it writes that cache only when ``sys.dont_write_bytecode`` is off, and these machines set
PYTHONDONTWRITEBYTECODE. So each of the (then four) workers rewrote all ~300 test modules itself:
~7 of the ~12 CPU-seconds of a worker's collection. pytest *reads* the cache whatever that
variable says, so the controller writes it here, in a process pool beside compileall, and the
workers only load it. The same holds for the installed pytest plugins: pytest rewrites every module
of a distribution that declares a ``pytest11`` entry point (all of anyio, because of its plugin;
xdist, pytest-asyncio), ~0.7 CPU-s in each worker, so those are written here too (:func:`plugin_sources`). The files are pytest's own format, made by pytest's own functions; a stale
or foreign file is simply rewritten by pytest as before (it checks the source hash).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def write_all(tests_root: Path, more: Iterable[Path] = ()) -> int:
    """Cache the rewritten form of every test module and conftest under ``tests_root``, and of the
    ``more`` sources; returns how many were (re)written."""
    sources = sorted({*tests_root.rglob("test_*.py"), *tests_root.rglob("conftest.py"), *more})
    chunks = [sources[i::2] for i in range(2)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(_write_chunk, chunks))


def _write_chunk(sources: list[Path]) -> int:
    from _pytest.assertion.rewrite import PYC_TAIL, _read_pyc, _write_pyc_fp, get_cache_dir, rewrite_asserts

    written = 0
    for source in sources:
        pyc = get_cache_dir(source) / (source.name[:-3] + PYC_TAIL)
        if _read_pyc(source, pyc) is not None:
            continue  # already there for this source
        data = source.read_bytes()
        tree = ast.parse(data, filename=str(source))
        rewrite_asserts(tree, data, str(source), None)  # None: the defaults this project uses
        code = compile(tree, str(source), "exec", dont_inherit=True)
        pyc.parent.mkdir(exist_ok=True)
        partial = pyc.with_name(f"{pyc.name}.{os.getpid()}")
        with open(partial, "wb") as out:
            _write_pyc_fp(out, importlib.util.source_hash(data), code)
        os.replace(partial, pyc)
        written += 1
    return written


def plugin_sources() -> list[Path]:
    """The installed files pytest rewrites on import: every module under the names it marks for each
    distribution with a ``pytest11`` entry point (the same walk as pytest's
    ``Config._mark_plugins_for_rewrite``, with its own ``_iter_rewritable_modules``)."""
    from _pytest.config import _iter_rewritable_modules

    found: list[Path] = []
    for dist in importlib.metadata.distributions():
        if not any(ep.group == "pytest11" for ep in dist.entry_points):
            continue
        files = [str(f) for f in dist.files or []]
        names = set(_iter_rewritable_modules(files))
        for file in files:
            if not file.endswith(".py"):
                continue
            module = file[:-3].removesuffix("/__init__").replace("/", ".")
            if any(module == name or module.startswith(name + ".") for name in names):
                found.append(Path(str(dist.locate_file(file))))
    return [path for path in found if path.is_file()]
