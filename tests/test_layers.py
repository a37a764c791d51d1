"""The import layering the README describes, enforced: tasks/cli → services → providers/store → normalize → model.

Every ``autosync`` import in the package (module level or inside a function) is checked, so the
layering cannot quietly erode.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autosync"

# Lower ranks never import higher ones. "support" modules (settings, logging, scrubbing, metrics
# counters) sit under the I/O edges, which all use them; the entry points (Celery tasks and app, CLI,
# receiver, processes, demo, emulator) sit on top.
RANK = {"model": 0, "errors": 0, "normalize": 1, "settings": 2, "redact": 2, "log": 2, "metrics": 2,
        "retries": 2,
        "providers": 3, "store": 3, "ratelimit": 3, "services": 4}
ENTRY = 5
# The two I/O edges never use each other: adapters touch no SQL, the store makes no HTTP call.
APART = {("providers", "store"), ("store", "providers")}
# Known exceptions, each with its reason.
ALLOWED = {
    # An ad-hoc request is a message to the broker: publishing it needs the task's signature.
    ("services/adhoc.py", "tasks"),
}


def _layer(name: str) -> str:
    return name.split(".")[1] if name.startswith("autosync.") else name


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "autosync":
                found.update(f"autosync.{a.name}" for a in node.names)
            elif node.module.startswith("autosync."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("autosync."))
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        own = rel.split("/")[0].removesuffix(".py")
        for target in sorted(_layer(m) for m in _imports(path)):
            if target == own or (rel, target) in ALLOWED:
                continue
            if own == "emulator" or (target == "emulator" and RANK.get(own, ENTRY) < ENTRY):
                problems.append(f"{rel} imports autosync.{target}: the emulator stands apart from autosync")
            elif RANK.get(target, ENTRY) > RANK.get(own, ENTRY) or (own, target) in APART:
                problems.append(f"{rel} ({own}) imports autosync.{target}")
    return problems


def test_every_import_follows_the_layering() -> None:
    assert _violations() == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from autosync.services import runs\n    import autosync.store.db\n"
                      "from autosync import errors, model\n")
    assert _imports(module) == {"autosync.services", "autosync.store.db", "autosync.errors", "autosync.model"}
