"""Import layers of ``bench/``: parts import only parts of their own layer or lower, and no two
parts import each other, directly or round a loop. Imports under ``if TYPE_CHECKING:`` do not
count; imports inside functions do."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"

LAYERS: dict[str, int] = {
    # 0: leaves
    "__init__": 0, "errors": 0, "types": 0, "evidence": 0, "paths": 0, "registry": 0, "timing": 0,
    "fsio": 0, "spans": 0, "devices": 0, "subproc": 0,
    # 1
    "modelref": 1, "video": 1, "store": 1, "index": 1,
    # 2
    "text": 2, "llm": 2, "vision": 2, "testing": 2, "impression": 2,
    # 3
    "datasets": 3,
    # 4: the one search engine; families build on it and it never imports them
    "engine": 4,
    # 5: the families (scorers)
    "retrievers": 5,
    # 6: the workspace, and tagging (zero-shot tags from what the workspace's retrievers hold)
    "workspace": 6, "tagging": 6,
    # 7: evaluation scores and reports; nothing it evaluates imports it
    "eval": 7,
    # 8: what users run (``__main__`` is ``python -m bench``)
    "serving": 8, "cli": 8, "__main__": 8,
}
"""Part -> layer. A part is a subpackage (``bench/retrievers/``) or a top-level module
(``bench/timing.py``); ``bench/__init__.py`` is the part ``__init__``."""


@dataclass(frozen=True)
class Edge:
    """``src`` imports ``dst`` (both module names) at ``file:line``."""

    src: str
    dst: str
    file: str
    line: int

    def where(self) -> str:
        return f"{self.file}:{self.line} ({self.src} -> {self.dst})"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file for every ``.py`` file under the package directory ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement below ``node`` (in functions too), except under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield from _imports(ast.Module(body=[stmt], type_ignores=[]))
        else:
            yield from _imports(child)


def import_edges(root: Path, package: str) -> list[Edge]:
    """Imports between modules of the package at ``root`` (other packages are left out).

    ``from bench import x`` is an import of ``bench.x`` when that is a module, else of
    ``bench``; relative imports are resolved against the importing module's package.
    """
    modules = module_names(root, package)
    edges = []
    for src, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root.parent).as_posix()
        is_package = path.name == "__init__.py"
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = src.split(".") if is_package else src.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                if target != package and not target.startswith(package + "."):
                    continue
                # ``import bench.a.b`` of a name that is not a module file: its nearest module.
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                edges.append(Edge(src, target, rel, node.lineno))
    return edges


def part_of(module: str) -> str:
    """``bench.retrievers.bm25_text`` -> ``retrievers``; ``bench.timing`` -> ``timing``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def part_edges(edges: list[Edge]) -> dict[tuple[str, str], list[Edge]]:
    """(importing part, imported part) -> the imports behind it; imports within a part are left out."""
    out: dict[tuple[str, str], list[Edge]] = {}
    for e in edges:
        a, b = part_of(e.src), part_of(e.dst)
        if a != b:
            out.setdefault((a, b), []).append(e)
    return out


def find_cycles(graph: Mapping[tuple[str, str], list[Edge]]) -> list[list[str]]:
    """Loops between parts, each as a path ``[a, b, ..., a]`` (one per back edge of a DFS)."""
    succ: dict[str, list[str]] = {}
    for a, b in sorted(graph):
        succ.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in succ.get(node, []):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(succ):
        if node not in state:
            visit(node)
    return cycles


def violations(root: Path, package: str, layers: Mapping[str, int]) -> dict[str, list[str]]:
    """Every broken rule as readable lines, under ``cycles``, ``upward`` and ``unplaced``."""
    edges = import_edges(root, package)
    graph = part_edges(edges)
    cycles = []
    for cycle in find_cycles(graph):
        hops = [graph[(a, b)][0].where() for a, b in zip(cycle, cycle[1:], strict=False)]
        cycles.append(" -> ".join(cycle) + ": " + "; ".join(hops))
    upward = [
        f"{e.where()}: {a} (layer {layers[a]}) imports {b} (layer {layers[b]})"
        for (a, b), es in sorted(graph.items()) if a in layers and b in layers and layers[b] > layers[a]
        for e in es
    ]
    parts = {part_of(m) for m in module_names(root, package)}
    unplaced = [f"part {p!r} is not in the layer map" for p in sorted(parts - set(layers))]
    return {"cycles": cycles, "upward": upward, "unplaced": unplaced}


# -- the checks on a package made up for the purpose -------------------------------------------


def _fake_package(root: Path) -> Path:
    pkg = root / "pkg"
    files = {
        "__init__.py": "",
        "low.py": "import os\nfrom pkg.mid import helper  # upward and, with mid -> low, a loop\n",
        "mid/__init__.py": "",
        "mid/helper.py": "from .. import low\n\n\ndef f():\n    from pkg.top import run\n    return run\n",
        "top.py": ("from typing import TYPE_CHECKING\n\nimport pkg.low\n\n"
                   "if TYPE_CHECKING:\n    from pkg import stray  # does not count\n"),
        "stray.py": "",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text, encoding="utf-8")
    return pkg


def test_walker_resolves_relative_function_level_and_submodule_imports(tmp_path: Path) -> None:
    edges = {(e.src, e.dst, e.line) for e in import_edges(_fake_package(tmp_path), "pkg")}
    assert edges == {
        ("pkg.low", "pkg.mid.helper", 2),
        ("pkg.mid.helper", "pkg.low", 1),  # relative, `from .. import low`
        ("pkg.mid.helper", "pkg.top", 5),  # inside a function
        ("pkg.top", "pkg.low", 3),
    }  # and nothing from the TYPE_CHECKING block of top.py


def test_checks_report_a_loop_an_upward_import_and_an_unplaced_part(tmp_path: Path) -> None:
    found = violations(_fake_package(tmp_path), "pkg", {"low": 0, "mid": 1, "top": 2})
    assert any(c.startswith("low -> mid -> low:") and "pkg/low.py:2" in c and "pkg/mid/helper.py:1" in c
               for c in found["cycles"]), found["cycles"]
    assert any(c.startswith("low -> mid -> top -> low:") for c in found["cycles"]), found["cycles"]
    assert found["upward"] == [
        "pkg/low.py:2 (pkg.low -> pkg.mid.helper): low (layer 0) imports mid (layer 1)",
        "pkg/mid/helper.py:5 (pkg.mid.helper -> pkg.top): mid (layer 1) imports top (layer 2)",
    ]
    assert found["unplaced"] == ["part '__init__' is not in the layer map",
                                 "part 'stray' is not in the layer map"]


# -- the checks on bench/ -----------------------------------------------------------------------


def test_the_walk_of_bench_sees_known_imports() -> None:
    graph = part_edges(import_edges(BENCH, "bench"))
    assert ("eval", "retrievers") in graph  # the runner builds retrievers
    assert ("__main__", "cli") in graph
    assert len(graph) > 20


def test_no_part_is_left_out_of_the_layer_map() -> None:
    assert violations(BENCH, "bench", LAYERS)["unplaced"] == []


def test_no_import_loop_between_parts() -> None:
    cycles = violations(BENCH, "bench", LAYERS)["cycles"]
    assert not cycles, "import loops between parts of bench/:\n" + "\n".join(cycles)


def test_no_part_imports_a_higher_layer() -> None:
    upward = violations(BENCH, "bench", LAYERS)["upward"]
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)
