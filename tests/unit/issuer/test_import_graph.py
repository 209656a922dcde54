"""No import circles: the import-time graph of keyswap's packages is acyclic.

A small AST walk over every module of ``keyswap.issuer``, ``keyswap.jwks`` and
``keyswap.clients``: an edge for each ``import`` that runs when the module is imported,
and also for the deferred ones inside functions (``create_app`` importing the views),
since a deferred import that closes a circle only hides it. Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGES = ("keyswap.issuer", "keyswap.jwks", "keyswap.clients")


def _modules(package: str) -> dict[str, Path]:
    root = Path(importlib.import_module(package).__file__ or "").parent
    found = {}
    for path in root.rglob("*.py"):
        parts = [*package.split("."), *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        elif parts[-1] == "__main__":
            continue
        found[".".join(parts)] = path
    return found


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.extend(_imports(ast.Module(body=node.orelse, type_ignores=[])))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        found.extend(_imports(node))
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Map each module to the modules of ``modules`` it imports (its own parents aside)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in modules:
                    edges.add(submodule)
                elif target in modules:
                    edges.add(target)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import circle of ``graph`` (first module repeated at the end), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            cycle = visit(nxt, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_find_cycle_sees_a_circle():
    # The check itself can fail: a planted circle is found, a chain is not.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package):
    modules = {name: path for p in PACKAGES for name, path in _modules(p).items()}
    graph = import_graph(modules)
    own = {name: edges for name, edges in graph.items() if name.startswith(package)}
    assert own, package
    assert find_cycle(graph) is None


def test_protocol_modules_do_not_reach_for_the_flask_app():
    # Grants, policy, storage and tokens take what they need from the server they are
    # registered on; only the web layer asks Flask for the current app.
    modules = _modules("keyswap.issuer")
    protocol = [
        name
        for name in modules
        if name.startswith("keyswap.issuer.grants")
        or name
        in {
            "keyswap.issuer.server",
            "keyswap.issuer.endpoints",
            "keyswap.issuer.policy",
            "keyswap.issuer.storage",
            "keyswap.issuer.tokens",
            "keyswap.issuer.introspection",
            "keyswap.issuer.revocation",
            "keyswap.issuer.client_auth",
            "keyswap.issuer.errors",
        }
    ]
    for name in protocol:
        assert "current_app" not in modules[name].read_text(), name


def _imports_flask(path: Path) -> bool:
    for node in _imports(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        if any(name and name.split(".")[0] == "flask" for name in names):
            return True
    return False


@pytest.mark.parametrize("module", ["keyswap.issuer.errors", "keyswap.issuer.tokens"])
def test_errors_and_tokens_do_not_drag_flask_in(module):
    # Rendering lives in the web layer (``rendering``): the taxonomy, and token minting
    # that raises from it, import no web framework, directly or through keyswap modules.
    modules = {name: path for p in PACKAGES for name, path in _modules(p).items()}
    graph = import_graph(modules)
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    assert [name for name in sorted(seen) if _imports_flask(modules[name])] == []


def test_policy_decides_over_what_storage_reads_not_the_reverse():
    # One-way: policy imports storage's read values (``OwnerStatus``); storage, which only
    # reads and writes, imports no policy, directly or through other keyswap modules.
    modules = {name: path for p in PACKAGES for name, path in _modules(p).items()}
    graph = import_graph(modules)
    seen, todo = set(), ["keyswap.issuer.storage"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    assert "keyswap.issuer.policy" not in seen
    assert "keyswap.issuer.storage" in graph["keyswap.issuer.policy"]
