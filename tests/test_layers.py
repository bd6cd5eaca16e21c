"""The package's layers (README.md, Development): a module imports only from its own layer and the ones
below, lazily or not, and the import graph has no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bpttbench"

# Bottom to top, as README.md's table lists them: module path prefixes (relative to bpttbench/, no .py).
LAYERS = [
    ("facts", ["errors", "scheme_names", "config", "defaults", "files"]),
    ("math", ["kernels/", "reference", "model", "fidelity/online_reference"]),
    ("learning rules", ["schemes/"]),
    ("data", ["data/"]),
    ("results", ["results/", "weights"]),
    ("training", ["training/"]),
    ("analyses", ["plot", "report/", "fidelity/", "speed", "speed_bounds", "studymap", "sample", "export", "torch",
                  "peers/"]),
    ("orchestration", ["sweep/", "study"]),
    ("surfaces", ["api", "console", "cli/", "__init__", "__main__"]),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("").as_posix()
    return rel[: -len("/__init__")] + "/" if rel.endswith("/__init__") else rel


def layer_of(name: str) -> int:
    """The layer of a module given as a path without .py ('report/stats', 'config', 'report/')."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or (prefix.endswith("/") and name.startswith(prefix)):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"bpttbench/{name} is in no layer: add it to README.md's table and to LAYERS"
    return best[0]


def imported(path: Path) -> set[str]:
    """Every bpttbench module a file imports, at the top or inside a function, as module paths."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name == "bpttbench" or not name.startswith("bpttbench."):
                continue
            rel = name[len("bpttbench."):].replace(".", "/")
            if (PACKAGE / f"{rel}.py").is_file():
                out.add(rel)
            elif (PACKAGE / rel).is_dir():
                out.add(rel + "/")
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imported(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_from_a_higher_layer():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
              for m, deps in graph().items() for d in deps
              if layer_of(d) > layer_of(m) and not (m.endswith("/") and d.startswith(m))]
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycles():
    edges = {m: {d for d in deps if not d.endswith("/") and d != m} for m, deps in graph().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start, [])):
            raise AssertionError("import cycle: " + " -> ".join(cycle[cycle.index(cycle[-1]):]))


def test_at_most_twenty_modules_at_the_top_level():
    assert len(list(PACKAGE.glob("*.py"))) <= 20
