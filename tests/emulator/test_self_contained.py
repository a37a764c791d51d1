"""The provider emulator stands alone: nothing in autosync/emulator imports the rest of autosync.

It plays the providers' part in the tests and the demo, so it must not share code (and with it, a
bug or a wrong idea of the wire format) with the client it checks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

EMULATOR = Path(__file__).resolve().parents[2] / "autosync" / "emulator"


def _imported(path: Path) -> list[str]:
    """Absolute module names a file imports, at any depth (function-level imports included)."""
    package = "autosync.emulator"
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the emulator package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.append(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.append(node.module)
    return names


def test_no_emulator_module_imports_autosync_outside_the_emulator() -> None:
    modules = sorted(EMULATOR.rglob("*.py"))
    assert len(modules) > 10
    outside = {f"{path.relative_to(EMULATOR)}: {name}" for path in modules for name in _imported(path)
               if (name == "autosync" or name.startswith("autosync.")) and not name.startswith("autosync.emulator")}
    assert not outside, sorted(outside)


def test_loading_the_emulator_loads_nothing_else_of_autosync() -> None:
    code = ("import sys, autosync.emulator.server, autosync.emulator.client, autosync.emulator.generator, "
            "autosync.emulator.generator_outlook; print(sorted(m for m in sys.modules if m.startswith('autosync')"
            " and not m.startswith('autosync.emulator')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['autosync']"
