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


def _statement_leaks(path: Path) -> list[str]:
    """Where a module reaches past the store seam: imports store.db or the SQL modules' statements, or
    runs SQL itself (``.execute(`` / ``transaction(``)."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "autosync.store.db":
            found.append(f"line {node.lineno}: imports autosync.store.db")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in {"execute", "executemany", "transaction", "cursor"}:
                found.append(f"line {node.lineno}: calls {name}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = node.value.lstrip().split(None, 1)
            if words and words[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"} \
                    and words[0].isupper() and len(words) > 1 and ('"' in node.value or " FROM " in node.value):
                found.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
    return found


def test_services_work_through_the_store_seam_only() -> None:
    """Services hold no SQL and open no transaction of their own: every statement is the store's."""
    problems = [f"services/{p.name} {leak}" for p in sorted((PACKAGE / "services").glob("*.py"))
                for leak in _statement_leaks(p)]
    assert problems == []


def test_the_seam_check_finds_sql_in_a_service(tmp_path: Path) -> None:
    module = tmp_path / "s.py"
    module.write_text("from autosync.store.db import transaction\n"
                      "def f():\n    with transaction() as conn:\n"
                      "        conn.execute('SELECT 1 FROM calendar WHERE \"calendarId\" = %(c)s', {})\n")
    leaks = _statement_leaks(module)
    assert len(leaks) == 4, leaks


def _provider_branches(path: Path) -> list[str]:
    """Comparisons of a provider kind with a literal kind (1, 2 or a Provider member)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            text = ast.unparse(node)
            names_kind = any(w in text for w in ("calendar_type", "calendarType", "kind"))
            literal = any((isinstance(c, ast.Constant) and c.value in (1, 2)) or "Provider." in ast.unparse(c)
                          for c in [node.left, *node.comparators])
            if names_kind and literal:
                found.append(f"line {node.lineno}: {text}")
    return found


def test_services_never_ask_which_provider_it_is() -> None:
    """Provider differences are adapter attributes and methods; only the context's lookup names a kind."""
    problems = [f"services/{p.name} {b}" for p in sorted((PACKAGE / "services").glob("*.py"))
                if p.name != "context.py" for b in _provider_branches(p)]
    assert problems == []


def test_the_provider_check_finds_a_branch(tmp_path: Path) -> None:
    module = tmp_path / "b.py"
    module.write_text("def f(run, row):\n    if run.calendar_type == 2 and row['calendarType'] != Provider.GOOGLE:\n"
                      "        pass\n")
    assert len(_provider_branches(module)) == 2
