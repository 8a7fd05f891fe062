"""The import layering of ``policies``, ``supervisors`` and ``runtime``, read from the source.

Every module is parsed with :mod:`ast` (nothing is imported), and every ``import`` in it
counts: at module level, inside functions, and under ``if TYPE_CHECKING:`` (an annotation
import is still a dependency a reader must follow, and it is how cycles creep back).

Three rules:

- **No private cross-package import.** A module whose dotted path has a private part
  (``runtime.store._sqlite``, ``supervisors._telemetry``, ``runtime._errors``) belongs to
  the package just before that part, and only that package's own modules may import it.
  Anything else imports the package's public ``__init__``.
- **One direction.** ``policies`` <- ``supervisors`` <- ``runtime``: policies import neither
  of the others, supervisors do not import runtime; and policies stay pure (no trio, anyio,
  sqlite3 or time: time and I/O are passed in).
- **No cycle between runtime's parts** (its subpackages and top-level modules).

A rule broken in code this branch does not own, and being fixed elsewhere, is listed in
``KNOWN_VIOLATIONS``; an entry that no longer occurs fails too, so the list stays exact.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("policies", "supervisors", "runtime")
# The order the packages are layered in: each may import only those before it.
LAYERS = {"policies": 0, "supervisors": 1, "runtime": 2}
# What would make a policy do I/O or read a clock instead of being handed one.
IMPURE_FOR_POLICIES = frozenset({"trio", "anyio", "sqlite3", "time"})

# Violations tolerated for now: none. Keep it that way; the checks below fail on a new
# one and on an entry here that no longer occurs.
# Entries: (rule, importing module, imported module) for "private" and "order";
# (rule, part, part) for a "cycle" edge between runtime parts.
KNOWN_VIOLATIONS: frozenset[tuple[str, str, str]] = frozenset()


class Import(NamedTuple):
    """One imported module, where it is imported."""

    importer: str
    target: str
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(f for package in PACKAGES for f in (ROOT / package).rglob("*.py"))


def known_modules() -> frozenset[str]:
    return frozenset(module_name(path) for path in source_files())


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    # A package's own name is its base for ``from . import``; a module's is its parent.
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, modules: frozenset[str], root: Path = ROOT) -> Iterator[Import]:
    """Every module ``path`` imports, wherever the import statement is.

    ``from package import name`` imports the submodule ``package.name`` when there is one
    (``from runtime.telemetry import _instruments``), the package otherwise.
    """
    importer = module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(importer, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(importer, path.name == "__init__.py", node)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                private_name = alias.name.startswith("_") and not alias.name.startswith("__")
                target = candidate if candidate in modules or private_name else base
                yield Import(importer, target, path, node.lineno)


def all_imports() -> list[Import]:
    modules = known_modules()
    return [found for path in source_files() for found in imports_of(path, modules)]


def private_owner(target: str) -> str | None:
    """The package a private module or name belongs to (``runtime.store`` for
    ``runtime.store._sqlite``), or None if the whole path is public."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def private_violations(found: list[Import]) -> dict[tuple[str, str, str], list[Import]]:
    bad: dict[tuple[str, str, str], list[Import]] = defaultdict(list)
    for imp in found:
        owner = private_owner(imp.target)
        if owner and owner.split(".")[0] in PACKAGES and not inside(imp.importer, owner):
            bad[("private", imp.importer, imp.target)].append(imp)
    return bad


def order_violations(found: list[Import]) -> dict[tuple[str, str, str], list[Import]]:
    bad: dict[tuple[str, str, str], list[Import]] = defaultdict(list)
    for imp in found:
        mine, theirs = imp.importer.split(".")[0], imp.target.split(".")[0]
        upward = theirs in LAYERS and LAYERS[theirs] > LAYERS[mine]
        impure = mine == "policies" and theirs in IMPURE_FOR_POLICIES
        if upward or impure:
            bad[("order", imp.importer, imp.target)].append(imp)
    return bad


def runtime_part(module: str) -> str | None:
    """The part of runtime a module belongs to: ``runtime.store`` for
    ``runtime.store._sqlite``, ``runtime._errors`` for itself, ``runtime`` for the
    package's ``__init__``; None outside runtime."""
    parts = module.split(".")
    if parts[0] != "runtime":
        return None
    return ".".join(parts[:2])


def part_graph(found: list[Import]) -> dict[str, dict[str, list[Import]]]:
    """Edges between runtime parts, each with the imports that make it."""
    graph: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for imp in found:
        source, target = runtime_part(imp.importer), runtime_part(imp.target)
        if source and target and source != target:
            graph[source][target].append(imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, list[Import]]]) -> list[set[str]]:
    """Tarjan's components of more than one node: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, {})):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycle_violations(found: list[Import]) -> dict[tuple[str, str, str], list[Import]]:
    graph = part_graph(found)
    bad: dict[tuple[str, str, str], list[Import]] = {}
    for component in strongly_connected(graph):
        for source in sorted(component):
            for target, imps in sorted(graph[source].items()):
                if target in component:
                    bad[("cycle", source, target)] = imps
    return bad


def describe(bad: dict[tuple[str, str, str], list[Import]]) -> str:
    lines = []
    for key in sorted(bad):
        sites = ", ".join(sorted({imp.where() for imp in bad[key]})[:3])
        lines.append(f"  {key!r}  at {sites}")
    return "\n".join(lines)


def check(rule: str, bad: dict[tuple[str, str, str], list[Import]], advice: str) -> None:
    known = {key for key in KNOWN_VIOLATIONS if key[0] == rule}
    new = {key: bad[key] for key in bad if key not in known}
    assert not new, f"{advice}\n{describe(new)}"
    stale = sorted(known - set(bad))
    assert not stale, (
        "these KNOWN_VIOLATIONS no longer occur; remove them from tests/test_layering.py:\n"
        + "\n".join(f"  {key!r}" for key in stale)
    )


def test_the_sources_are_found() -> None:
    modules = known_modules()
    assert {"policies", "supervisors", "runtime", "runtime.telemetry", "runtime.store"} <= modules


def test_no_private_cross_package_import() -> None:
    check(
        "private",
        private_violations(all_imports()),
        "a module imports another package's private module or name; export what it needs "
        "from that package's __init__ (its __all__) and import it from there:",
    )


def test_imports_point_one_way() -> None:
    check(
        "order",
        order_violations(all_imports()),
        "imports must point policies <- supervisors <- runtime, and policies must not "
        "import trio, anyio, sqlite3 or time (pass time and I/O in):",
    )


def test_no_cycle_between_runtime_parts() -> None:
    check(
        "cycle",
        cycle_violations(all_imports()),
        "runtime's parts import each other in a cycle (TYPE_CHECKING and function-level "
        "imports count); move the shared piece down, or describe what is needed with a "
        "Protocol on the lower side. Edges of the cycle:",
    )


def test_telemetry_imports_nothing_above_it() -> None:
    # The direction chosen for store <-> telemetry: the store reports through telemetry,
    # so telemetry knows none of the parts that use it, even for annotations.
    graph = part_graph(all_imports())
    users = {
        "runtime",
        "runtime.actors",
        "runtime.cli",
        "runtime.ops",
        "runtime.pipeline",
        "runtime.replay",
        "runtime.store",
        "runtime.worker",
    }
    above = {t: imps for t, imps in graph.get("runtime.telemetry", {}).items() if t in users}
    assert not above, "runtime.telemetry imports " + ", ".join(
        f"{t} ({imps[0].where()})" for t, imps in sorted(above.items())
    )


# -- the checker itself, on small sources ----------------------------------------------


def _imports(tmp_path: Path, module: str, source: str, extra: tuple[str, ...] = ()) -> list[str]:
    path = tmp_path / (module.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    modules = frozenset({module, *extra})
    return [imp.target for imp in imports_of(path, modules, tmp_path)]


def test_imports_are_found_wherever_they_are(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import runtime.store\n"
        "from runtime.telemetry import _instruments as tel, settled\n"
        "from . import _sibling\n"
        "from .._errors import ValidationFailed\n"
        "if TYPE_CHECKING:\n"
        "    from runtime.store._envelope import NewItem\n"
        "def f():\n"
        "    from runtime.worker import Worker\n"
    )
    found = _imports(tmp_path, "runtime.telemetry._x", source, ("runtime.telemetry._sibling",))
    assert found == [
        "typing",
        "runtime.store",
        "runtime.telemetry._instruments",
        "runtime.telemetry",
        "runtime.telemetry._sibling",
        "runtime._errors",
        "runtime.store._envelope",
        "runtime.worker",
    ]


def test_the_rules_on_made_up_imports() -> None:
    def imp(importer: str, target: str) -> Import:
        return Import(importer, target, ROOT / "x.py", 1)

    found = [
        imp("runtime.ops._doctor", "runtime.store._schema"),  # private, cross-package
        imp("runtime.store._sqlite", "runtime.store._schema"),  # private, own package
        imp("runtime.telemetry._setup", "runtime._errors"),  # runtime's own, inside it
        imp("supervisors._engine", "runtime._errors"),  # private and upward
        imp("runtime.telemetry._sampling", "supervisors._telemetry"),
        imp("policies._retry", "time"),
        imp("runtime.store._sqlite", "runtime.telemetry"),
        imp("runtime.telemetry._x", "runtime.store"),
    ]
    assert set(private_violations(found)) == {
        ("private", "runtime.ops._doctor", "runtime.store._schema"),
        ("private", "supervisors._engine", "runtime._errors"),
        ("private", "runtime.telemetry._sampling", "supervisors._telemetry"),
    }
    assert set(order_violations(found)) == {
        ("order", "supervisors._engine", "runtime._errors"),
        ("order", "policies._retry", "time"),
    }
    assert set(cycle_violations(found)) == {
        ("cycle", "runtime.store", "runtime.telemetry"),
        ("cycle", "runtime.telemetry", "runtime.store"),
    }


def test_every_module_is_under_500_lines() -> None:
    """Small modules named for what they hold: a module past 500 lines holds several."""
    long = {
        str(path.relative_to(ROOT)): n
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text().splitlines())) >= 500
    }
    assert not long, f"split these along their seams: {long}"
