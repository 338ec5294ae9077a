"""The import picture of npgan: no cycle between its modules, except the engine's Tensor-method installation.

Every ``import`` and ``from ... import`` statement of every module under npgan/ is read with ``ast`` (at module
level and inside functions, which run later but still tie the two modules together; not those under
``if TYPE_CHECKING:``, which never run). ``from package import name`` counts as an import of the submodule
``package.name`` when there is one, else of the package. A package's ``__init__`` that a submodule import
runs on the way is not counted: it only gathers names.

The one allowed cycle: ``npgan.autograd`` defines ``Tensor``, the ops (``npgan.ops.*``) build on it, and
``npgan.functional`` gathers the ops and installs them as Tensor's operators and methods (``x + y``,
``x.sum()``), which autograd's own code uses -- a knot by design, kept to those modules.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "npgan"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _under_type_checking(node, parents) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str) -> set:
    """The npgan modules that module ``name`` imports."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # a relative import: from the package ``level - 1`` steps above this one
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def strongly_connected_components(graph: dict) -> list:
    """Tarjan's algorithm, iterative: the groups of modules that import each other, directly or not."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _tensor_method_installation(name: str) -> bool:
    return name in ("npgan.autograd", "npgan.functional", "npgan.ops") or name.startswith("npgan.ops.")


def test_the_import_reader_sees_module_level_function_level_and_relative_imports():
    assert "npgan.autograd" in GRAPH["npgan.functional"]  # from npgan.autograd import Tensor
    assert "npgan.ops.linear" in GRAPH["npgan.functional"]  # from npgan.ops.linear import linear
    assert "npgan.backend" in GRAPH["npgan.autograd"]  # from npgan import backend: the submodule
    assert "npgan.functional" in GRAPH["npgan.autograd"]  # inside a function: from npgan.functional import ...
    assert "npgan.nn.module" in GRAPH["npgan.nn.layers"]
    components = strongly_connected_components({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert sorted(sorted(c) for c in components) == [["a", "b", "c"], ["d"]]


def test_the_only_import_cycle_is_the_engines_tensor_method_installation():
    cycles = [sorted(c) for c in strongly_connected_components(GRAPH) if len(c) > 1]
    for cycle in cycles:
        outside = [m for m in cycle if not _tensor_method_installation(m)]
        assert not outside, (
            f"modules {outside} are in an import cycle ({' <-> '.join(cycle)}): break it by moving the shared "
            "code down into a module both can import"
        )
    assert any("npgan.autograd" in c and "npgan.functional" in c for c in cycles)  # the one by design


@pytest.mark.parametrize("package", ["npgan.nn", "npgan.gan", "npgan.bench", "npgan.runtime"])
def test_no_package_imports_itself_in_a_circle(package):
    members = {m: {t for t in GRAPH[m] if t.startswith(package + ".")} for m in GRAPH if m.startswith(package + ".")}
    cycles = [sorted(c) for c in strongly_connected_components(members) if len(c) > 1]
    assert not cycles, f"import cycles inside {package}: {cycles}"
