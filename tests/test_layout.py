"""The package's shape: no import circles between its modules (imports made at module level,
outside `if TYPE_CHECKING:`), and instrumentation that knows the meter only through its hooks."""

from __future__ import annotations

import ast
from pathlib import Path

import tollmeter

ROOT = Path(tollmeter.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Modules of tollmeter imported when `path` is imported (module level, not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("tollmeter"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.startswith("tollmeter"):
                    for alias in node.names:  # `from . import streams` imports a submodule
                        candidate = f"{target}.{alias.name}"
                        found.add(candidate if (ROOT.parent / (candidate.replace(".", "/") + ".py")).exists()
                                  else target)

    visit(tree.body)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    edges = {}
    for name, path in modules.items():
        targets = set()
        for target in imports_of(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def test_no_import_circles():
    edges = graph()
    done: set[str] = set()

    def walk(node, stack):
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(edges.get(node, ())):
            # A package's __init__ importing its own submodules is how packages work.
            if not target.startswith(node + "."):
                walk(target, stack + [node])
        done.add(node)

    for node in sorted(edges):
        walk(node, [])


def test_instrumentation_knows_the_meter_only_through_its_hooks():
    for path in (ROOT / "instrument").glob("*.py"):
        source = path.read_text()
        assert ".meter." not in source and "import Meter" not in source, path.name
        assert "meter._" not in source and ".config." not in source, path.name


def test_limits_know_no_call_and_no_sdk():
    for path in (ROOT / "limits").glob("*.py"):
        imported = imports_of(path) | {
            node.module or "" for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)}
        assert not any("instrument" in name for name in imported), path.name
