"""The shape of the package: no import cycle, and a vendor lives in its own two modules only.

Adding a vendor is `exporter/vendors/<vendor>.py` + `exporter/simulator/<vendor>.py` + its
fixtures, golden files and quirk tests (docs/architecture.md); this proves nothing else has to
change because nothing else names a vendor, and tests that are about every vendor iterate the
registry.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from exporter.vendors import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "exporter"
NAMES = re.compile("|".join(REGISTRY), re.IGNORECASE)
# A test may use a few vendors as examples (one with a catalog, one with categories, ...);
# naming more is enumerating them, which a new vendor would silently miss.
EXAMPLE_VENDORS = 3


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every exporter module `path` imports, TYPE_CHECKING and function-level imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_import_cycle() -> None:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {i for i in imports(p) if i in modules and i != m} for m, p in modules.items()}
    # A package's __init__ importing its own submodules is not a cycle with them.
    for m in graph:
        graph[m] = {i for i in graph[m] if not m.startswith(i + ".") or i == "exporter"}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt], done)
        done.add(node)

    done: set[str] = set()
    for m in sorted(graph):
        if m not in done:
            visit(m, [m], done)
    assert not cycles, f"import cycles: {cycles}"


def test_only_a_vendors_own_modules_name_it() -> None:
    own = {PACKAGE / d / f"{v}.py" for v in REGISTRY for d in ("vendors", "simulator")}
    offenders = {
        str(p.relative_to(ROOT)): sorted({m.lower() for m in NAMES.findall(p.read_text())})
        for p in PACKAGE.rglob("*.py")
        if p not in own and NAMES.search(p.read_text())
    }
    assert not offenders, f"modules naming a vendor outside its own modules: {offenders}"


def test_no_test_enumerates_vendors_by_hand() -> None:
    own = {ROOT / "tests" / "vendors" / f"test_{v}.py" for v in REGISTRY}
    offenders = {}
    for path in (ROOT / "tests").rglob("*.py"):
        named = {m.lower() for m in NAMES.findall(path.read_text())}
        if path not in own and len(named) > EXAMPLE_VENDORS:
            offenders[str(path.relative_to(ROOT))] = sorted(named)
    assert not offenders, f"tests listing vendors instead of iterating the registry: {offenders}"


def test_the_import_check_sees_a_cycle(tmp_path: Path) -> None:
    """The cycle finder is not vacuous: the old collector/scheduler pair would be caught."""
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from exporter.scheduler import X\n"
    )
    assert "exporter.scheduler" in imports(tmp_path / "a.py")
