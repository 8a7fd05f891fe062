"""The store's seam: the rules and the front end name no backend (its exports are pinned
with every package's in tests/test_exports.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import runtime.store

STORE = Path(runtime.store.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_rules_and_the_front_end_name_no_backend() -> None:
    # The rules are pure (no I/O, no SQL); the front end reaches a backend only through
    # the protocol, so SQLite specifics cannot leak into policy.
    rules = _imports(STORE / "_rules.py")
    assert not {m for m in rules if m in {"sqlite3", "os", "time", "anyio", "trio"}}
    for front in ("_rules.py", "_front.py", "_front_base.py", "_backend.py", "_ready.py"):
        modules = _imports(STORE / front)
        assert not [m for m in modules if "sqlite" in m or "memory" in m], front
