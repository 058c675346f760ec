"""The import rules of docs/architecture.md ("Layering"), checked on the source with `ast`.

Every import of every module under `keras_pose3d/`, `pipelines/`, `experiments/` and
`benchmarks/` is read, function-level imports included (the project imports heavy modules
late), and held against the rules: layers only import their own layer or below, library code
never imports an entry point (nor a Beam job's `main`), nothing in `keras_pose3d` but
`training/run.py` imports `pipelines`, `pipelines` never imports training, evaluation or
serving, training, evaluation and serving import none of each other, nothing imports
`experiments` or `benchmarks`, and module-level imports form no cycle. Nothing is imported:
the test reads files only.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_pose3d", "pipelines", "experiments", "benchmarks")

# Modules that are only entry points (argument parsing + one library call).
ENTRY_POINTS = frozenset(
    {
        "keras_pose3d.train",
        "keras_pose3d.evaluate",
        "keras_pose3d.infer",
        "keras_pose3d.temporal_train",
        "keras_pose3d.export",
        "keras_pose3d.predict_sequences",
        "keras_pose3d.evaluation.loss_surface",
        "keras_pose3d.evaluation.sensitivity",
    }
)
# Library modules that also carry an entry point: their `main` is what no one may import.
JOB_MODULES_SUFFIXES = ("_to_tfrecord",)
# The main job's orchestration, above the library groups; of the package, only RUN_MODULE
# imports pipelines (the synthetic dataset's Beam job).
RUN_MODULE = "keras_pose3d.training.run"
ORCHESTRATION = (RUN_MODULE, "keras_pose3d.training.main_job")

# The layers of docs/architecture.md, lowest first. A module belongs to the layer of the
# longest matching name (a package name matches its submodules).
LAYERS = (
    (
        "core",
        (
            "keras_pose3d",
            "keras_pose3d.skeleton",
            "keras_pose3d.camera",
            "keras_pose3d.metrics",
            "keras_pose3d.config",
            "keras_pose3d.temporal_config",
            "keras_pose3d.cli",
            "keras_pose3d.atomic_files",
        ),
    ),
    ("data", ("keras_pose3d.data",)),
    (
        "models",
        (
            "keras_pose3d.models",
            "keras_pose3d.losses",
            "keras_pose3d.layers",
        ),
    ),
    ("pipelines", ("pipelines",)),
    (
        "library",
        (
            "keras_pose3d.training",
            "keras_pose3d.resumable_fit",
            "keras_pose3d.evaluation",
            "keras_pose3d.serving",
            "keras_pose3d.inference",
        ),
    ),
    ("orchestration", ORCHESTRATION),
    ("entry", tuple(sorted(ENTRY_POINTS))),
    ("scripts", ("experiments", "benchmarks")),
)
# Side by side in the "library" layer: who may import whom across these groups.
LIBRARY_GROUPS = {
    "training": ("keras_pose3d.training", "keras_pose3d.resumable_fit"),
    "evaluation": ("keras_pose3d.evaluation",),
    "serving": ("keras_pose3d.serving",),
    "inference": ("keras_pose3d.inference",),
}
LIBRARY_ALLOWED = {("inference", "serving")}  # refine / frame_predictor read exported models
FORBIDDEN_FOR_PIPELINES = (
    "keras_pose3d.training",
    "keras_pose3d.evaluation",
    "keras_pose3d.serving",
)


@dataclasses.dataclass(frozen=True)
class Import:
    source: str  # importing module
    path: pathlib.Path
    line: int
    target: str  # imported module (resolved: a submodule where one is named)
    names: tuple[str, ...]  # names taken from the target by `from ... import`
    module_level: bool  # executed at import time (not in a function, not TYPE_CHECKING)

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {
        _module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = _modules()


def _ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


class _Collector(ast.NodeVisitor):
    def __init__(self, source: str, path: pathlib.Path):
        self.source, self.path = source, path
        self.package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        self.depth = 0  # > 0 inside a function or under `if TYPE_CHECKING`
        self.imports: list[Import] = []
        self.aliases: dict[str, str] = {}  # local name -> module it is bound to
        self.attributes: list[tuple[str, str, int]] = []  # (alias, attribute, line)

    def _nested(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_If(self, node):
        if "TYPE_CHECKING" in ast.unparse(node.test):
            self._nested(node)
        else:
            self.generic_visit(node)

    def _add(self, line, target, names=()):
        if _ours(target):
            self.imports.append(
                Import(self.source, self.path, line, target, tuple(names), self.depth == 0)
            )

    def visit_Import(self, node):
        for alias in node.names:
            self._add(node.lineno, alias.name)
            if alias.asname:
                self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node):
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module
        plain = []
        for alias in node.names:
            sub = f"{module}.{alias.name}"
            if sub in MODULES:  # `from package import submodule`
                self._add(node.lineno, sub)
                self.aliases[alias.asname or alias.name] = sub
            else:
                plain.append(alias.name)
        if plain:
            self._add(node.lineno, module, plain)

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id in self.aliases:
            self.attributes.append((self.aliases[node.value.id], node.attr, node.lineno))
        self.generic_visit(node)


def _collect() -> tuple[list[Import], list[tuple[str, str, str, int]]]:
    imports, attributes = [], []
    for name, path in MODULES.items():
        collector = _Collector(name, path)
        collector.visit(ast.parse(path.read_text(), filename=str(path)))
        imports += collector.imports
        attributes += [(name, str(path), *a) for a in collector.attributes]
    return imports, attributes


IMPORTS, ATTRIBUTES = _collect()


def _layer(module: str) -> int:
    best, best_len = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer of test_layering.LAYERS")
    return best


def _under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _library(module: str) -> bool:
    """keras_pose3d and pipelines, less the entry-point-only modules."""
    return module.split(".")[0] in ("keras_pose3d", "pipelines") and module not in ENTRY_POINTS


def _group(module: str) -> str | None:
    if module in ORCHESTRATION:
        return None  # the orchestration layer, above the groups
    for name, prefixes in LIBRARY_GROUPS.items():
        if _under(module, prefixes):
            return name
    return None


def _is_job(module: str) -> bool:
    return module.startswith("pipelines.") and module.endswith(JOB_MODULES_SUFFIXES)


def test_every_module_is_in_a_layer_and_every_import_resolves():
    assert len(MODULES) > 50 and len(IMPORTS) > 100  # the walk found the tree
    for name in MODULES:
        _layer(name)
    unknown = [f"{i.where()}: {i.target}" for i in IMPORTS if i.target not in MODULES]
    assert not unknown, "imports of modules that do not exist:\n" + "\n".join(unknown)


# Each rule: the imports (and `alias.attribute` uses) that break it, as readable lines.
def upward(imports) -> list[str]:
    return [
        f"{i.where()}: {i.source} ({LAYERS[_layer(i.source)][0]}) imports {i.target} "
        f"({LAYERS[_layer(i.target)][0]})"
        for i in imports
        if _layer(i.target) > _layer(i.source)
    ]


def entry_points_imported(imports, attributes=()) -> list[str]:
    bad = [
        f"{i.where()}: {i.source} imports entry point {i.target}"
        for i in imports
        if i.target in ENTRY_POINTS and _library(i.source)
    ]
    bad += [
        f"{i.where()}: {i.source} imports {i.target}.main"
        for i in imports
        if _is_job(i.target) and "main" in i.names and _library(i.source)
    ]
    bad += [
        f"{path}:{line}: {source} uses {target}.main"
        for source, path, target, attr, line in attributes
        if _is_job(target) and attr == "main" and _library(source)
    ]
    return bad


def pipelines_below_run(imports) -> list[str]:
    """Imports of pipelines by any module of the package but RUN_MODULE."""
    return [
        f"{i.where()}: {i.source} imports {i.target}"
        for i in imports
        if _under(i.source, ("keras_pose3d",))
        and i.source != RUN_MODULE
        and _under(i.target, ("pipelines",))
    ]


def pipelines_upward(imports) -> list[str]:
    return [
        f"{i.where()}: {i.source} imports {i.target}"
        for i in imports
        if _under(i.source, ("pipelines",)) and _under(i.target, FORBIDDEN_FOR_PIPELINES)
    ]


def across_library_groups(imports) -> list[str]:
    return [
        f"{i.where()}: {i.source} ({_group(i.source)}) imports {i.target} ({_group(i.target)})"
        for i in imports
        if _group(i.source)
        and _group(i.target)
        and _group(i.source) != _group(i.target)
        and (_group(i.source), _group(i.target)) not in LIBRARY_ALLOWED
    ]


def scripts_imported(imports) -> list[str]:
    return [
        f"{i.where()}: {i.source} imports {i.target}"
        for i in imports
        if i.source.split(".")[0] in ("keras_pose3d", "pipelines")
        and _under(i.target, ("experiments", "benchmarks"))
    ]


def test_no_import_from_a_higher_layer():
    assert upward(IMPORTS) == []


def test_library_imports_no_entry_point():
    assert entry_points_imported(IMPORTS, ATTRIBUTES) == []


def test_pipelines_only_from_the_orchestration_and_never_training_evaluation_serving():
    assert pipelines_below_run(IMPORTS) == []
    assert pipelines_upward(IMPORTS) == []


def test_training_evaluation_serving_import_none_of_each_other():
    assert across_library_groups(IMPORTS) == []


def test_nothing_imports_experiments_or_benchmarks():
    assert scripts_imported(IMPORTS) == []


def _module_graph(module_level_only: bool = True) -> dict[str, set[str]]:
    """Imports (module-level ones only by default), with the package `__init__`s an import
    runs on the way."""
    graph = {name: set() for name in MODULES}
    for i in IMPORTS:
        if module_level_only and not i.module_level:
            continue
        parts = i.target.split(".")
        own = i.source.split(".")
        for n in range(1, len(parts) + 1):
            step = ".".join(parts[:n])
            # A package the importer sits in is already being initialised.
            if step in MODULES and step != i.source and own[:n] != parts[:n]:
                graph[i.source].add(step)
        if i.target != i.source:
            graph[i.source].add(i.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_at_module_level():
    assert _cycles(_module_graph()) == []


def test_no_import_cycle_even_through_function_level_imports():
    # Late imports would hide a circle from Python but not from a reader: none either.
    assert _cycles(_module_graph(module_level_only=False)) == []


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"a"}}, [["a"]]),
    ],
)
def test_cycle_finder_on_hand_made_graphs(graph, expected):
    assert _cycles(graph) == expected


def _planted(source: str, target: str, names=(), module_level=False) -> Import:
    return Import(source, ROOT / "planted.py", 1, target, tuple(names), module_level)


def test_each_rule_reports_a_planted_violation():
    """The rules are not vacuous: made-up bad imports are reported, allowed ones are not."""
    assert len(upward([_planted("keras_pose3d.data.augment", "keras_pose3d.models.sap_net")])) == 1
    assert upward([_planted("keras_pose3d.models.sap_net", "keras_pose3d.data.augment")]) == []
    assert len(upward([_planted("keras_pose3d.skeleton", "keras_pose3d.data.features")])) == 1
    assert (
        len(
            entry_points_imported([_planted("keras_pose3d.inference.refine", "keras_pose3d.infer")])
        )
        == 1
    )
    job = "pipelines.synthetic_to_tfrecord"
    assert len(entry_points_imported([_planted("keras_pose3d.training.run", job, ["main"])])) == 1
    assert entry_points_imported([_planted("keras_pose3d.training.run", job, ["run"])]) == []
    uses_main = [("keras_pose3d.training.run", "run.py", job, "main", 3)]
    assert len(entry_points_imported([], uses_main)) == 1
    assert (
        entry_points_imported([_planted("keras_pose3d.train", "keras_pose3d.training.run")]) == []
    )
    assert len(pipelines_below_run([_planted("keras_pose3d.training.trainer", job)])) == 1
    assert pipelines_below_run([_planted("keras_pose3d.training.run", job)]) == []
    assert len(pipelines_below_run([_planted("keras_pose3d.training.main_job", job)])) == 1
    assert len(pipelines_below_run([_planted("keras_pose3d.evaluation.runner", job)])) == 1
    planted = _planted("pipelines.sharded_write", "keras_pose3d.serving.export")
    assert len(pipelines_upward([planted])) == 1
    planted = _planted("keras_pose3d.evaluation.runner", "keras_pose3d.serving.signatures")
    assert len(across_library_groups([planted])) == 1
    planted = _planted("keras_pose3d.inference.refine", "keras_pose3d.serving.signatures")
    assert across_library_groups([planted]) == []
    assert len(scripts_imported([_planted("keras_pose3d.metrics", "experiments.common")])) == 1


def test_collector_sees_function_level_relative_and_type_checking_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from keras_pose3d import skeleton\n"
        "from . import features as ft\n"
        "if TYPE_CHECKING:\n"
        "    from keras_pose3d.models import sap_net\n"
        "def f():\n"
        "    from pipelines import synthetic_to_tfrecord as job\n"
        "    return job.main, ft.KEY_BOX\n"
    )
    collector = _Collector("keras_pose3d.data.planted", ROOT / "keras_pose3d/data/planted.py")
    collector.visit(ast.parse(source))
    seen = [(i.line, i.target, i.module_level) for i in collector.imports]
    assert seen == [
        (2, "keras_pose3d.skeleton", True),
        (3, "keras_pose3d.data.features", True),
        (5, "keras_pose3d.models.sap_net", False),
        (7, "pipelines.synthetic_to_tfrecord", False),
    ]
    assert ("pipelines.synthetic_to_tfrecord", "main", 8) in collector.attributes
    assert ("keras_pose3d.data.features", "KEY_BOX", 8) in collector.attributes
