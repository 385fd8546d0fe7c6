"""The data layer imports only downward: no import cycle among torch_brain/data's modules, and the
bottom modules (_deferred, _hdf5) import nothing from the package (function-level imports count)."""

import ast
from pathlib import Path

import torch_brain.data

DATA = Path(torch_brain.data.__file__).parent


def _imports(path: Path) -> set[str]:
    """Modules of torch_brain.data imported anywhere in ``path`` (relative or absolute)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 and not mod:
                found.update(a.name for a in node.names)
            elif node.level == 1:
                found.add(mod.split(".")[0])
            elif mod.startswith("torch_brain.data."):
                found.add(mod.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("torch_brain.data."))
    return found


def _graph() -> dict[str, set[str]]:
    mods = {p.stem for p in DATA.glob("*.py") if p.stem != "__init__"}
    return {m: _imports(DATA / f"{m}.py") & mods for m in mods}


def test_no_import_cycles_in_the_data_layer():
    graph, state = _graph(), {}

    def visit(m, stack):
        state[m] = "open"
        for dep in sorted(graph[m]):
            assert state.get(dep) != "open", f"import cycle: {' -> '.join(stack + [m, dep])}"
            if dep not in state:
                visit(dep, stack + [m])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_bottom_modules_import_nothing_from_the_package():
    graph = _graph()
    assert graph["_deferred"] == set() and graph["_hdf5"] == set()
    assert "_data" not in graph["_lazy"] and not ({"_data", "_lazy"} & graph["_timeseries"])
