"""Start-up time of the everyday commands: what a user waits for before anything happens.

    uv run python bench/startup.py [--runs 5] [--no-uv] [--only status,markets] [--cold] [--tree DIR]

Each command runs ``--runs`` times (after one unmeasured warm-up run that fills the OS page cache
and Python's bytecode cache) through the venv's console script (``.venv/bin/polybot``, what an
activated venv runs) and through ``uv run polybot`` (what README tells a newcomer to type; it adds
uv's own check that the environment is in sync). Printed: the median and the fastest run of each,
the median CPU time (user + system: what a loaded machine inflates least), the target (issue 19,
on an idle machine) and the load average before and after, since on a shared, loaded machine
every wall time grows.

Python's bytecode cache is on, in a private directory (``PYTHONPYCACHEPREFIX``), as on a user's
machine after the first run, even where the environment sets ``PYTHONDONTWRITEBYTECODE``; with
``--cold`` every run compiles every module from source instead (what such an environment pays).
``--tree DIR`` measures another checkout of the code (e.g. ``git archive COMMIT | tar -x -C DIR``)
with this venv's interpreter, for before/after figures; the ``uv run`` column is then skipped.

The commands run against a fresh, migrated SQLite database and a configuration naming it, both in
a temporary directory. ``disarm`` runs with ``--wait 0.05`` and no service to claim the request, so
its figure is start-up, the request's insert and its withdrawal (exit 1, "expired").
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    target_s: float
    exit_code: int = 0
    """What the command exits with here: a run that exits otherwise failed, and its time means nothing."""


def cases(db_url: str, config: Path) -> list[Case]:
    db = ("--db-url", db_url)
    return [
        Case("--help", ("--help",), 0.3),
        Case("status", ("status", *db), 0.8),
        Case("health", ("health", *db), 0.8, exit_code=1),  # unhealthy: nothing ingested
        Case("markets", ("markets", *db), 0.8),
        Case("disarm", ("disarm", *db, "--wait", "0.05"), 0.8, exit_code=1),  # no service took it
        Case("preflight --offline", ("preflight", "--config", str(config), "--offline"), 1.5),
    ]


def check(argv: list[str], case: Case, env: dict[str, str]) -> str | None:
    """None when the command exits as expected, else what it printed on stderr."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode == case.exit_code:
        return None
    return f"{case.name} exited {done.returncode}, not {case.exit_code}:\n{done.stderr[-2000:]}"


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    """user + system CPU of the process and its children: what load on the machine changes least."""
    rc: int


def timed(argv: list[str], env: dict[str, str]) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Run(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.returncode)


def launcher(polybot: str, tree: Path | None) -> list[str]:
    """The venv's console script, or this interpreter running ``tree``'s code in its place."""
    if tree is None:
        return [polybot]
    code = f"import sys; sys.path.insert(0, {str(tree)!r}); from polybot.cli.main import main; sys.exit(main())"
    return [sys.executable, "-c", code]


def measure(prefix: list[str], case: Case, runs: int, env: dict[str, str]) -> list[Run]:
    argv = [*prefix, *case.argv]
    problem = check(argv, case, env)  # also the warm-up: page cache and .pyc files
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    return [timed(argv, env) for _ in range(runs)]


def child_env(pycache: Path, *, cold: bool = False) -> dict[str, str]:
    """This environment without POLYBOT_* settings, with its bytecode cache in ``pycache`` (and only
    there: no ``__pycache__`` beside the sources is read). ``cold``: the cache stays empty, so every
    run compiles every module from source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def prepare(tmp: Path, polybot: list[str], env: dict[str, str]) -> tuple[str, Path]:
    """A migrated SQLite database in ``tmp`` and a configuration naming it (paper mode, defaults)."""
    db_url = f"sqlite:///{tmp / 'polybot.db'}"
    subprocess.run(
        [*polybot, "migrate", "--db-url", db_url, "--apply"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    config = tmp / "service.toml"
    config.write_text(f'[db]\nurl = "{db_url}"\n')
    return db_url, config


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def _cell(runs: list[Run] | None) -> str:
    if not runs:
        return f"{'-':>8} {'-':>8} {'-':>8}"
    wall = [r.wall_s for r in runs]
    cpu = statistics.median(r.cpu_s for r in runs)
    return f"{statistics.median(wall):8.2f} {min(wall):8.2f} {cpu:8.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="measured runs per command and launcher (default 5)")
    ap.add_argument("--no-uv", action="store_true", help="skip the `uv run polybot` column")
    ap.add_argument("--only", default="", help="comma-separated command names to run (default: all)")
    ap.add_argument("--cold", action="store_true", help="no bytecode cache: every run compiles from source")
    ap.add_argument("--tree", type=Path, default=None, help="measure the code of this checkout instead")
    args = ap.parse_args()

    polybot = str(Path(sys.executable).parent / "polybot")
    if not Path(polybot).is_file():
        sys.stderr.write(f"{polybot} not found: run this with the project's venv (uv run python bench/startup.py)\n")
        return 2
    uv = None if args.no_uv or args.tree else shutil.which("uv")
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}

    cache = "none (--cold: compiled from source every run)" if args.cold else "on, in a private directory"
    code = f"the checkout in {args.tree}" if args.tree else "this checkout"
    print(f"load average before: {load()}; {args.runs} runs each, after one warm-up")
    print(f"code: {code}; bytecode cache: {cache}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="polybot-startup-") as tmp:
        env = child_env(Path(tmp) / "pycache", cold=args.cold)
        db_url, config = prepare(Path(tmp), launcher(polybot, args.tree), env)
        for case in cases(db_url, config):
            if wanted and case.name not in wanted:
                continue
            venv = measure(launcher(polybot, args.tree), case, args.runs, env)
            via_uv = measure([uv, "run", "polybot"], case, args.runs, env) if uv else None
            rows.append((case, venv, via_uv))
            print(f"  measured {case.name}", file=sys.stderr)

    print()
    heads = ("med", "min", "cpu")
    venv_heads = " ".join(f"{'venv ' + h:>8}" for h in heads)
    uv_heads = " ".join(f"{'uv ' + h:>8}" for h in heads)
    print(f"{'command':<22} {'target':>6}  {venv_heads}  {uv_heads}  meets  exit")
    for case, venv, via_uv in rows:
        meets = "yes" if statistics.median(r.wall_s for r in venv) < case.target_s else "NO"
        codes = ",".join(str(c) for c in sorted({r.rc for r in venv}))
        if any(r.rc != case.exit_code for r in venv):
            meets, codes = "FAIL", f"{codes} (expected {case.exit_code})"
        print(f"{case.name:<22} {case.target_s:6.1f}  {_cell(venv)}  {_cell(via_uv)}  {meets:<5}  {codes}")
    print()
    print("seconds: median and fastest wall time, median CPU time (user + system, children included);")
    print("`meets` compares the venv's median wall time with the target, which is set for an idle machine;")
    print("`exit` is the commands' exit status: health is 1 on an empty database (nothing ingested), disarm 1")
    print("(no service took the request); FAIL marks a command that exited otherwise (its stderr is shown above)")
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
