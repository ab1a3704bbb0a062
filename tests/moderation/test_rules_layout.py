"""The rules engine is a package that knows nothing of the database, HTTP or the rest of the domain."""

from __future__ import annotations

import ast
from pathlib import Path

import moderation.rules

ALLOWED_FIRST_PARTY = ("moderation.rules",)
FORBIDDEN_ROOTS = {"sqlalchemy", "fastapi", "starlette", "storage", "accounts", "classroom", "classguard", "celery"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_rules_package_imports_only_itself_and_libraries() -> None:
    files = sorted(Path(moderation.rules.__file__).parent.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "policy.py", "normalize.py", "detectors.py", "evaluation.py"}
    for f in files:
        for name in _imports(f):
            root = name.split(".")[0]
            assert root not in FORBIDDEN_ROOTS, f"{f.name} imports {name}"
            if root == "moderation":
                assert name.startswith(ALLOWED_FIRST_PARTY), f"{f.name} imports {name}"


def test_public_api_is_re_exported() -> None:
    for name in moderation.rules.__all__:
        assert hasattr(moderation.rules, name), name
