"""The import graph of ``jaxdeconv``: no cycle, and every layer imports downwards only.

Every module of the package is parsed with ``ast`` (nothing is imported), and every import
statement counts, at module level or inside a function (a lazy import is still a dependency):
``import jaxdeconv.x``, ``from jaxdeconv.x import y``, ``from . import y``. An edge goes to the
module named (``from jaxdeconv.app import image_io`` -> ``jaxdeconv.app.image_io``; a name that
is not a module -> the package that defines it), never to the parent packages Python runs on the
way, so ``jaxdeconv/__init__.py`` importing the public API does not count as everyone's import.

The layers, lowest first (README, "Architecture"):

* ``config``: ``jaxdeconv/config.py``, the one config object, is a value every layer reads, so it
  is the lowest layer; ``jaxdeconv/variants.py``, the config's named variants (Table 5, S1-S6),
  is config too and sits with it.
* ``core`` < ``classical`` < ``planning`` < ``run`` < ``pipeline`` < ``app``;
* ``api``: ``jaxdeconv/__init__.py``, the public API, may import anything below the benchmark;
* ``bench``: the benchmark layer, on top.

A module may import its own layer and those below. Importing a module by a name held in a
string (``plugins.BUILTIN_MODULES``, as big_vision picks ``models.{name}``) is not an import
statement and is not an edge.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = "jaxdeconv"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE

LAYERS = ("config", "core", "classical", "planning", "run", "pipeline", "app", "api", "bench")
# The top-level modules and sub-packages, by the layer they belong to.
LAYER_OF = {
    "config": "config",
    "variants": "config",
    "core": "core",
    "classical": "classical",
    "planning": "planning",
    "run": "run",
    "pipeline": "pipeline",
    "app": "app",
    "bench": "bench",
}

# Edges known to go upwards, each with what removes it. Delete an entry once that has happened;
# the test fails on an entry whose edge no longer exists, so none outlives its reason.
EXPECTED_UPWARD: set[tuple[str, str]] = set()


def module_files(root: pathlib.Path, package: str = PACKAGE) -> dict[str, pathlib.Path]:
    """``{dotted module name: file}`` for every ``.py`` file under ``root`` (the package)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: pathlib.Path, known: set[str], package: str = PACKAGE) -> set[str]:
    """The modules of ``package`` that module ``name`` (file ``path``) imports, at any depth of
    its code; ``known``: the package's module names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    # The package a relative import starts from: the module itself for an __init__.py.
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from a import b``: the module a.b when b is one, else a itself.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target == package or target.startswith(package + "."):
                # ``import a.b.c`` of a name that is not a module: its package.
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                if target != name:
                    found.add(target)
    return found


def import_graph(root: pathlib.Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """``{module: the package's modules it imports}`` for every module of ``package``."""
    files = module_files(root, package)
    return {name: imports_of(name, path, set(files), package) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or None when it has none."""
    done, path, on_path = set(), [], {}

    def visit(node: str) -> list[str] | None:
        on_path[node] = len(path)
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                return path[on_path[nxt] :] + [nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        del on_path[node]
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def layer(module: str, package: str = PACKAGE) -> str:
    """The layer of a module of ``package`` (its first part below the package)."""
    parts = module.split(".")
    if parts == [package]:
        return "api"
    if parts[1] not in LAYER_OF:
        raise ValueError(f"{module}: in no layer; add {parts[1]!r} to LAYER_OF")
    return LAYER_OF[parts[1]]


def upward_edges(graph: dict[str, set[str]], package: str = PACKAGE) -> set[tuple[str, str]]:
    """The edges ``(importer, imported)`` of ``graph`` that go to a higher layer."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return {
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if rank[layer(b, package)] > rank[layer(a, package)]
    }


def _describe(edges) -> str:
    return "\n".join(f"  {a} ({layer(a)}) imports {b} ({layer(b)})" for a, b in sorted(edges))


# ------------------------------------------------------------------------- the checker itself


def _write_package(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    package = root / PACKAGE
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_the_checker_sees_lazy_relative_and_from_imports(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "__init__.py": "from jaxdeconv.pipeline import run\n",
            "config.py": "",
            "core/__init__.py": "",
            "core/a.py": "import numpy\nfrom . import b\n",
            "core/b.py": "def f():\n    from jaxdeconv.app import io\n    return io\n",
            "app/__init__.py": "",
            "app/io.py": "import jaxdeconv.core.a\nfrom ..core.b import f\n",
            "pipeline.py": "from jaxdeconv import config\nfrom jaxdeconv.core import a, b\n",
        },
    )
    graph = import_graph(package)
    assert graph == {
        "jaxdeconv": {"jaxdeconv.pipeline"},
        "jaxdeconv.config": set(),
        "jaxdeconv.core": set(),
        "jaxdeconv.core.a": {"jaxdeconv.core.b"},
        "jaxdeconv.core.b": {"jaxdeconv.app.io"},  # lazy, inside a function
        "jaxdeconv.app": set(),
        "jaxdeconv.app.io": {"jaxdeconv.core.a", "jaxdeconv.core.b"},
        "jaxdeconv.pipeline": {"jaxdeconv.config", "jaxdeconv.core.a", "jaxdeconv.core.b"},
    }
    # The lazy import closes a cycle through two layers and goes upwards.
    cycle = find_cycle(graph)
    assert cycle[0] == cycle[-1] and len(cycle) == 4
    assert set(cycle) == {"jaxdeconv.core.a", "jaxdeconv.core.b", "jaxdeconv.app.io"}
    assert find_cycle({**graph, "jaxdeconv.core.b": set()}) is None
    assert upward_edges(graph) == {("jaxdeconv.core.b", "jaxdeconv.app.io")}


def test_the_checker_passes_a_clean_graph_and_ranks_the_layers():
    clean = {
        "jaxdeconv": {"jaxdeconv.app.cli", "jaxdeconv.config"},
        "jaxdeconv.variants": {"jaxdeconv.config"},
        "jaxdeconv.core.train": {"jaxdeconv.config", "jaxdeconv.core.plugins"},
        "jaxdeconv.planning": {"jaxdeconv.classical.crops", "jaxdeconv.core.train"},
        "jaxdeconv.bench.metrics": {"jaxdeconv", "jaxdeconv.app.image_io"},
    }
    assert find_cycle(clean) is None and upward_edges(clean) == set()
    bad = {
        "jaxdeconv.config": {"jaxdeconv.variants"},  # same layer: allowed
        "jaxdeconv.classical.crops": {"jaxdeconv.planning"},
        "jaxdeconv.app.cli": {"jaxdeconv"},  # the public API sits above the application
        "jaxdeconv.pipeline": {"jaxdeconv.bench.metrics"},
    }
    assert upward_edges(bad) == {
        ("jaxdeconv.classical.crops", "jaxdeconv.planning"),
        ("jaxdeconv.app.cli", "jaxdeconv"),
        ("jaxdeconv.pipeline", "jaxdeconv.bench.metrics"),
    }
    with pytest.raises(ValueError, match="in no layer"):
        layer("jaxdeconv.extras.thing")


# ------------------------------------------------------------------------------ the package


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_module_is_in_the_graph_and_in_a_layer(graph):
    assert len(graph) > 50 and "jaxdeconv.pipeline" in graph and "jaxdeconv" in graph
    assert {layer(name) for name in graph} == set(LAYERS)


def test_the_package_has_no_import_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_layer_imports_downwards_only(graph):
    upward = upward_edges(graph)
    unexpected = upward - EXPECTED_UPWARD
    assert not unexpected, "imports of a higher layer:\n" + _describe(unexpected)
    gone = EXPECTED_UPWARD - upward
    assert not gone, "expected exceptions that no longer exist (delete them):\n" + _describe(gone)


def test_the_core_path_does_not_import_the_application(graph):
    """``pipeline`` (and all below it) reach ``app`` through no import but the listed one."""
    below_app = [m for m in graph if LAYERS.index(layer(m)) < LAYERS.index("app")]
    into_app = {(m, t) for m in below_app for t in graph[m] if layer(t) == "app"}
    assert into_app <= EXPECTED_UPWARD, _describe(into_app - EXPECTED_UPWARD)
