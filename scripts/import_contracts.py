"""An import-linter contract that follows module-level imports only.

import-linter counts an ``import`` inside a function like one at the top of a module. For the
web tier that is too strict: a service may import the numeric code it runs inside the function
that runs it (the web process then loads it only when a request needs it; a Celery task imports
its service the same way). ``module_level_forbidden`` is the ``forbidden`` contract on the graph
of imports that run when a module is imported: those at module level, outside functions and
``if TYPE_CHECKING:`` blocks. Registered in ``pyproject.toml`` under ``contract_types``.
"""

from __future__ import annotations

import ast
import copy
import functools
from pathlib import Path

from grimp import ImportGraph
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.domain.contract import ContractCheck

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def module_level_import_lines(module: str) -> frozenset[int]:
    """Line numbers of the import statements of ``module`` (a module of this repository) that
    run when it is imported; empty for a module without a source file here."""
    base = ROOT.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    if not path.is_file():
        return frozenset()
    lines: set[int] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # runs when called, not when the module is imported
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit_all(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                lines.add(child.lineno)
            visit(child)

    def visit_all(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            visit(ast.Module(body=[node], type_ignores=[]))

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return frozenset(lines)


def module_level_graph(graph: ImportGraph) -> ImportGraph:
    """A copy of ``graph`` without the imports that run only when a function is called."""
    pruned = copy.deepcopy(graph)
    for importer in sorted(graph.modules):
        if graph.is_module_squashed(importer):
            continue  # an external package: its own imports are not in the graph
        at_import = module_level_import_lines(importer)
        for imported in graph.find_modules_directly_imported_by(importer):
            details = graph.get_import_details(importer=importer, imported=imported)
            if not any(detail["line_number"] in at_import for detail in details):
                pruned.remove_import(importer=importer, imported=imported)
    return pruned


class ModuleLevelForbiddenContract(ForbiddenContract):
    """``forbidden``, over the imports that run when the source modules are imported."""

    type_name = "module_level_forbidden"

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        return super().check(module_level_graph(graph), verbose)
