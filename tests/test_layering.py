"""The packages depend one way: schemas <- eventstore <- projections (ARCHITECTURE.md).

`eventstore` may reach projections only lazily, inside functions (the CLI finds them through
entry points); `schemas` imports neither.
"""

from __future__ import annotations

import ast

import pytest

from conftest import REPO

FORBIDDEN = {"schemas": {"eventstore", "projections"}, "eventstore": {"projections"}, "projections": set()}


def module_level_imports(path) -> set[str]:
    """Top-level packages imported by statements that run when the module is imported."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue  # imports inside functions run only when called
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name.split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.add(child.module.split(".")[0])
            visit(child)

    visit(tree)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package):
    offenders = {
        str(path.relative_to(REPO)): sorted(module_level_imports(path) & FORBIDDEN[package])
        for path in (REPO / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
