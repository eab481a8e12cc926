"""The package's import graph: no cycle, no import upward, no module over 400 lines (issue 12, Layers).

The test reads every module of ``cropmeta/`` and of the command line (``cli/``, installed as
``cropmeta_cli``) with :mod:`ast` — nothing is imported — and collects every import, at module
level and inside functions alike, relative imports resolved. ``from P import n`` is an import of
the submodule ``P.n`` when there is one (as ``import P.n`` is), otherwise of ``P`` itself: so a
submodule that takes names from its own package's ``__init__`` (which imports the submodules)
makes a cycle, and ``from cropmeta import __version__`` is an import of the top (app) layer.

The declared layer order, lowest first. A module may import its own layer and any layer of a
lower rank; two different layers of the same rank are independent (neither imports the other)::

    10  cli          cropmeta_cli (cli/): flags → one library call → Rich output
     9  app          cropmeta (the package __init__: the Python API), app (the train/compare entry
                     points, where samples come from), api, results, doctor, ingest, ingest_tiles,
                     datasets, pipeline — orchestration: the demo, doctor, entry points
     8  evaluate     methods, comparison, benchmark, calibration, report rendering
     8  mapping      map export (sources → infer → executors → COG), accuracy
     7  train        the learners (meta-training, pretraining, fine-tuning, checkpoints)
     6  models       torch modules (LSTM + FiLM encoder, in-context, Presto), batched inference
     6  tasks        Task, TargetData, shot subsets, task construction
     5  sim          the simulated world (physics, rendering, world files, views, RF calibration)
     5  fetch        acquisition → Earth-Engine layout tifs
     4  io           readers/writers: Earth-Engine tifs, CropHarvest, labels, sample store, sampling
     3  regions      region names, boxes and geometry
     3  metrics      binary metrics
     2  schema       the CropHarvest-18 default schema, Normalizer (re-exports crops' names)
     1  bandschema   BandSchema, the schema as a value
     1  crops        crop names, crop groups, the task-information vector
     0  errors  _fs  _version  logs     the base: error classes, atomic writes, version, log lines

(io sits below sim and fetch: the simulator writes, and fetch writes, through io's Earth-Engine
writer; schema sits above bandschema, whose default instance it defines, and above crops, whose
names it re-exports; regions reads schema.)

``ALLOWED`` names imports that another engineer is removing right now, each with the reason; they
are left out of the checks. The lead empties it after merging that work. (There is no line limit:
modules are split where concepts split — issue 24 retired the old 400-line rule.)
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: (rank, layer name, module prefixes); the longest matching prefix names a module's layer
LAYERS = [
    (10, "cli", ["cropmeta_cli"]),
    (9, "app", ["cropmeta", "cropmeta.app", "cropmeta.api", "cropmeta.results", "cropmeta.doctor", "cropmeta.ingest",
                "cropmeta.ingest_tiles", "cropmeta.datasets", "cropmeta.pipeline"]),
    (8, "evaluate", ["cropmeta.evaluate"]),
    (8, "mapping", ["cropmeta.mapping"]),
    (7.5, "learners", ["cropmeta.learners"]),  # the registry's entries, over the train implementations
    (7, "train", ["cropmeta.train"]),
    (6.5, "learner contract", ["cropmeta.learners.base"]),  # protocols + registry: imports only errors
    (6.4, "configuration", ["cropmeta.train.config", "cropmeta.train.config_base"]),  # TrainConfig: imports only errors
    (6, "models", ["cropmeta.models"]),
    (6, "tasks", ["cropmeta.tasks"]),
    (5, "sim", ["cropmeta.sim"]),
    (5, "fetch", ["cropmeta.fetch"]),
    (4, "io", ["cropmeta.io"]),
    (3, "regions", ["cropmeta.regions"]),
    (3, "metrics", ["cropmeta.metrics"]),
    (2, "schema", ["cropmeta.schema"]),
    (1, "bandschema", ["cropmeta.bandschema"]),
    (1, "crops", ["cropmeta.crops"]),
    (0, "errors", ["cropmeta.errors"]),
    (0, "_fs", ["cropmeta._fs"]),
    (0, "_version", ["cropmeta._version"]),
    (0, "logs", ["cropmeta.logs"]),
    (0.5, "provenance", ["cropmeta.provenance"]),
    (0.5, "progress", ["cropmeta.progress"]),
]

#: (importer, imported): reason. Imports being removed by work in progress elsewhere (issue 12).
ALLOWED: dict = {}


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for cropmeta/ and cli/ (as cropmeta_cli)."""
    mods = {}
    for folder, package in (("cropmeta", "cropmeta"), ("cli", "cropmeta_cli")):
        for p in sorted((REPO / folder).rglob("*.py")):
            parts = (package, *p.relative_to(REPO / folder).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from P import n`: the submodule P.n when there is one, else a name of P itself
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:  # a name inside a module: that module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {t for t in _imports(m, p, mods) if (m, t) not in ALLOWED} for m, p in mods.items()}


def _layer(module: str) -> tuple[int, str]:
    best = None
    for rank, layer, prefixes in LAYERS:
        for pre in prefixes:
            if (module == pre or module.startswith(pre + ".")) and (best is None or len(pre) > best[0]):
                best = (len(pre), rank, layer)
    assert best is not None, f"{module}: in no declared layer; add it to LAYERS in tests/test_layers.py"
    return best[1], best[2]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as one cycle's path."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [[*_cycle_path(graph, c), f"(all of: {', '.join(c)})"] for c in comps]


def _cycle_path(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One import cycle through the first module of a strongly connected component."""
    members, start = set(comp), comp[0]
    prev, queue = {start: None}, [start]
    while queue:  # breadth-first back to start: the shortest cycle through it
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def test_layers_cover_every_module():
    for m in _modules():
        _layer(m)


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_no_import_breaks_the_layer_order():
    bad = []
    for importer, targets in sorted(_graph().items()):
        r_a, l_a = _layer(importer)
        for t in sorted(targets):
            r_b, l_b = _layer(t)
            if l_a != l_b and r_b >= r_a:
                why = "upward" if r_b > r_a else "between independent layers of the same rank"
                bad.append(f"  {importer} ({l_a}, {r_a}) imports {t} ({l_b}, {r_b}): {why}")
    assert not bad, "imports that break the declared layer order (tests/test_layers.py):\n" + "\n".join(bad)


def test_allow_list_names_real_imports():
    """An entry of ALLOWED whose import is gone must be removed (the list only shrinks)."""
    mods = _modules()
    stale = [f"{a} -> {b}" for a, b in ALLOWED if a not in mods or b not in _imports(a, mods[a], mods)]
    assert not stale, "ALLOWED entries whose import is gone; delete them:\n  " + "\n  ".join(stale)


def test_no_private_name_is_imported_across_modules():
    """Issue 24: a name another module needs is public; ``from cropmeta.x import _helper`` (or a
    relative import of one) fails here, naming the importer."""
    bad = []
    for p in sorted([*(REPO / "cropmeta").rglob("*.py"), *(REPO / "cli").rglob("*.py")]):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("cropmeta")):
                names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if names:
                    bad.append(f"  {p.relative_to(REPO).as_posix()}: from {'.' * node.level}{node.module or ''} "
                               f"import {', '.join(names)}")
    assert not bad, "private names imported across modules (make them public where they are defined):\n" + "\n".join(bad)


def _reexport_only(path: Path) -> list[str]:
    """The top-level ``from cropmeta… import`` statements of ``path`` none of whose names the module
    itself uses (names in ``__all__`` strings do not count): re-exports."""
    tree = ast.parse(path.read_text())
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("cropmeta")):
            names = [a.asname or a.name for a in node.names]
            if names and not any(n in used for n in names):
                out.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {', '.join(names)}")
    return out


def test_no_module_re_exports_another_modules_names(tmp_path):
    """Issue 24: a name is imported from the module that defines it; a block that imports names only
    to hand them on (a re-export shim) fails here. Package ``__init__`` files, the public API, are
    exempt."""
    bad = []
    for p in sorted([*(REPO / "cropmeta").rglob("*.py"), *(REPO / "cli").rglob("*.py")]):
        if p.name != "__init__.py":
            bad += [f"  {p.relative_to(REPO).as_posix()} {b}" for b in _reexport_only(p)]
    assert not bad, "re-exports (import these names from their own modules):\n" + "\n".join(bad)
    shim = tmp_path / "shim.py"  # the check itself catches one
    shim.write_text("from cropmeta.crops import task_info  # noqa: F401\nfrom cropmeta.crops import CROP_GROUPS\n"
                    "x = CROP_GROUPS\n")
    assert _reexport_only(shim) == ["line 1: from cropmeta.crops import task_info"]
