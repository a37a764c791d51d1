"""Every autosync name the benchmarks and fault campaigns import exists (most are imported lazily,
inside functions, so a renamed module would otherwise surface only when the bench runs)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _imports() -> list[tuple[str, str, str | None]]:
    found = []
    for path in sorted(BENCH.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in ("autosync", "bench"):
                found += [(path.relative_to(BENCH).as_posix(), node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(path.relative_to(BENCH).as_posix(), a.name, None) for a in node.names
                          if a.name.split(".")[0] in ("autosync", "bench")]
    return found


@pytest.mark.parametrize(("where", "module", "name"), _imports())
def test_what_the_bench_imports_exists(where: str, module: str, name: str | None) -> None:
    mod = importlib.import_module(module)
    if name is not None and not hasattr(mod, name):
        importlib.import_module(f"{module}.{name}")  # a submodule: `from autosync.demo import seed`
