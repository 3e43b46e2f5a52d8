"""The shape of the house: no import circle, ``db`` below the domains, package faces.

The import graph is grimp's (every import: module level, inside functions and under
``TYPE_CHECKING``, because a circle of any of them is a knot a reader has to untie).
"""

from __future__ import annotations

import importlib
from graphlib import CycleError, TopologicalSorter

import grimp
import pytest

GRAPH = grimp.build_graph("bastion")
DOMAINS = ("audit", "auth", "gateway", "monitoring", "policy", "privacy", "registry")
# Alembic runs this script at the top of the house; it gathers the schema for it.
MIGRATION_ENV = "bastion.db.migrations.env"


def _imports() -> dict[str, set[str]]:
    return {
        module: GRAPH.find_modules_directly_imported_by(module) - {module}
        for module in GRAPH.modules
    }


def test_no_module_imports_itself_through_others() -> None:
    try:
        list(TopologicalSorter(_imports()).static_order())
    except CycleError as exc:
        circle = " -> ".join(exc.args[1])
        pytest.fail(f"an import circle: {circle}")


def test_the_database_layer_imports_no_domain() -> None:
    upward = sorted(
        (module, imported)
        for module, imports in _imports().items()
        if module.startswith("bastion.db") and module != MIGRATION_ENV
        for imported in imports
        if imported.split(".")[1:2] and imported.split(".")[1] in DOMAINS
    )
    assert upward == []


def test_the_registry_workflows_do_not_reach_into_the_service() -> None:
    for helper in ("promotion", "moves", "recovery", "registration"):
        imported = GRAPH.find_modules_directly_imported_by(f"bastion.registry.{helper}")
        assert "bastion.registry.service" not in imported, helper


@pytest.mark.parametrize("package", ["bastion.gateway", "bastion.auth", "bastion.audit"])
def test_packages_name_their_public_faces(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__, f"{package} names no public names"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
