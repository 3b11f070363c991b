"""The shape of the code: each layer imports only from the layers below it, and no module
imports itself back through others (docs/development.md: "Shape of the code").

Every ``import`` statement of every module is read with :mod:`ast`, those inside functions
too (a function-level import is a dependency all the same, only a hidden one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fgssl

PACKAGE = Path(fgssl.__file__).parent

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # (name, module prefixes), lowest first
    (
        "foundation",
        ("fgssl._version", "fgssl.errors", "fgssl.atomic", "fgssl.overrides", "fgssl.rundir"),
    ),
    (
        "method math",
        (
            "fgssl.models",
            "fgssl.losses",
            "fgssl.ops",
            "fgssl.metrics",
            "fgssl.undefined",
            "fgssl.thresholds",
        ),
    ),
    ("data", ("fgssl.data", "fgssl.conf")),
    (
        "stages and step executors",
        ("fgssl.stages", "fgssl.steps", "fgssl.accumulation", "fgssl.optim", "fgssl.nonfinite"),
    ),
    (
        "module",
        (
            "fgssl.module",
            "fgssl.module_eval",
            "fgssl.module_losses",
            "fgssl.module_optim",
            "fgssl.module_passes",
            "fgssl.module_steps",
        ),
    ),
    ("evaluation and plots", ("fgssl.evaluation", "fgssl.plots")),
    ("run package", ("fgssl.run",)),
    ("run orchestrator", ("fgssl.run.pipeline",)),
    # the Python API (fgssl.train/load/predict) beside the console commands: each is one
    # call of what is below, and it shares their argument handling (fgssl.cli.common)
    ("commands and the Python API", ("fgssl.cli", "fgssl.api")),
]
"""The layer order of DESIGN.md's "Shape of the code"."""

NOT_BELOW: dict[str, tuple[str, ...]] = {
    # data knows no network and no training loop: of the layers below it, only the foundation
    "data": ("method math",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> int | None:
    """The index in ``layers`` of the longest prefix naming ``module`` (None: the package
    root)."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            names_it = module == prefix or module.startswith(prefix + ".")
            if names_it and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def imports_of(module: str) -> set[str]:
    """The fgssl modules ``module`` imports, at any depth of its code."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {name for name in found if name == "fgssl" or name.startswith("fgssl.")}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if m != "fgssl" and layer_of(m) is None]
    assert not unplaced, f"add these modules to a layer of LAYERS: {unplaced}"


def lowered_modules(layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> list[str]:
    """The prefixes of ``layers`` that sit in a lower layer than the package holding them
    (``fgssl.run.layout`` in the foundation while ``fgssl.run`` is above evaluation): such
    an exception lets the layers below import a piece of a layer above them, which the rule
    is there to stop. A module that all layers read belongs outside the higher package."""
    lowered = []
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            package = prefix.rpartition(".")[0]
            holder = layer_of(package, layers) if package != "fgssl" else None
            if holder is not None and holder > index:
                lowered.append(f"{prefix} ({layers[index][0]}, in {layers[holder][0]})")
    return lowered


def layer_violations(module: str, imports: set[str]) -> list[str]:
    """The imports of ``module`` that break the layer rule, each with its layer."""
    own = layer_of(module)
    assert own is not None
    own_name = LAYERS[own][0]
    wrong = []
    for imported in sorted(imports):
        if imported == "fgssl":
            wrong.append("fgssl (the package root imports the module layer: import the module)")
            continue
        theirs = layer_of(imported)
        assert theirs is not None, f"{module} imports {imported}, which is in no layer"
        if theirs > own or LAYERS[theirs][0] in NOT_BELOW.get(own_name, ()):
            wrong.append(f"{imported} ({LAYERS[theirs][0]})")
    return wrong


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Depth-first search for modules that reach themselves through imports."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in graph:
                continue
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_the_checks_catch_what_they_are_for() -> None:
    """Hand-made cases: the faults of issue 12 (a hidden import of the pipeline from
    evaluation, data importing a network, a cycle through three modules)."""
    hidden = ast.parse("def f():\n    from fgssl.run.pipeline import run_training\n")
    assert [n.module for n in ast.walk(hidden) if isinstance(n, ast.ImportFrom)] == [
        "fgssl.run.pipeline"
    ]
    assert layer_violations("fgssl.evaluation.evaluate", {"fgssl.run.pipeline"}) == [
        "fgssl.run.pipeline (run orchestrator)"
    ]
    assert layer_violations("fgssl.data.base", {"fgssl.models.backbone"}) == [
        "fgssl.models.backbone (method math)"
    ]
    assert layer_violations("fgssl.module", {"fgssl.losses", "fgssl.data.base"}) == []
    assert layer_violations("fgssl.run.factory", {"fgssl"})  # the root imports the module
    assert layer_of("fgssl.rundir") == 0
    # issue 25: the run directory's names in the foundation, but inside the run package,
    # let evaluation and plots import them from fgssl.run
    exempted = [("foundation", ("fgssl.errors", "fgssl.run.layout")), *LAYERS[1:]]
    assert lowered_modules(exempted) == ["fgssl.run.layout (foundation, in run package)"]
    assert layer_violations("fgssl.evaluation.evaluate", {"fgssl.run.layout"}) == [
        "fgssl.run.layout (run package)"
    ]
    assert layer_violations("fgssl.plots.curves", {"fgssl.rundir"}) == []
    assert lowered_modules() == []  # the orchestrator sits above its package: allowed
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "fgssl"))
def test_a_layer_imports_only_from_layers_below(module: str) -> None:
    wrong = layer_violations(module, GRAPH[module])
    assert not wrong, f"{module} ({LAYERS[layer_of(module) or 0][0]}) imports {', '.join(wrong)}"


def test_no_module_is_placed_below_its_package() -> None:
    lowered = lowered_modules()
    assert not lowered, f"move these modules out of their package, or raise them: {lowered}"


def test_no_import_cycles() -> None:
    graph = {
        m: {i for i in imports if i != "fgssl"} for m, imports in GRAPH.items() if m != "fgssl"
    }
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
