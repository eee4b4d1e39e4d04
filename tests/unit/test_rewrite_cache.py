"""The controller's cache of rewritten test modules is what pytest's workers load (tests/rewrite_cache.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.assertion.rewrite import PYC_TAIL, _read_pyc, get_cache_dir

from tests.rewrite_cache import write_all


def test_the_cache_holds_rewritten_asserts_and_is_written_once(tmp_path: Path) -> None:
    source = tmp_path / "sub" / "test_sample.py"
    source.parent.mkdir()
    source.write_text("def check() -> None:\n    have = [1, 2]\n    assert have == [1, 3]\n")
    (tmp_path / "helper.py").write_text("x = 1\n")  # not a test module: pytest does not rewrite it

    assert write_all(tmp_path) == 1
    code = _read_pyc(source, get_cache_dir(source) / (source.name[:-3] + PYC_TAIL))
    assert code is not None, "pytest would not read what was written"
    namespace: dict[str, object] = {}
    exec(code, namespace)
    with pytest.raises(AssertionError) as raised:
        namespace["check"]()  # type: ignore[operator]  # the sample's own function
    assert "assert [1, 2] == [1, 3]" in str(raised.value), "the asserts were not rewritten"
    assert not (get_cache_dir(tmp_path) / ("helper" + PYC_TAIL)).exists()

    assert write_all(tmp_path) == 0  # up to date: nothing rewritten again
    source.write_text(source.read_text() + "\n")
    assert write_all(tmp_path) == 1  # the source changed


def test_the_installed_plugins_pytest_rewrites_are_in_the_cache() -> None:
    """pytest rewrites whole plugin distributions (anyio's modules, through its pytest plugin) in
    every worker unless the controller cached them: each is there and current after its start."""
    import anyio._backends._asyncio
    import xdist.plugin

    from tests.rewrite_cache import plugin_sources

    sources = {Path(p).resolve() for p in plugin_sources()}
    for module in (anyio._backends._asyncio, xdist.plugin):
        source = Path(str(module.__file__)).resolve()
        assert source in sources, f"{source} is rewritten by pytest but not listed"
        pyc = get_cache_dir(source) / (source.name[:-3] + PYC_TAIL)
        assert _read_pyc(source, pyc) is not None, f"{source}: no current rewritten copy in {pyc}"
