"""The house's shape, read from the source (no import is executed): the import graph of
keras_ser and tfrecords_tools has no circle, the shared training floor never imports a
system, nothing imports upwards, and no module reaches for another module's private names."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("keras_ser", "tfrecords_tools")
SYSTEMS = {"keras_ser.training.mlee", "keras_ser.training.strengthnet", "keras_ser.training.epr",
           "keras_ser.training.fg_cme", "keras_ser.training.functionals"}
FLOOR = {"keras_ser.training.data", "keras_ser.training.loop", "keras_ser.training.runner",
         "keras_ser.training.registry", "keras_ser.training.metrics", "keras_ser.training.protocols",
         "keras_ser.training.plots", "keras_ser.training.utterance_features"}
# Layers of the house, lowest first: a module may import its own layer and those below it.
LAYERS = [
    ("keras_ser", "keras_ser.errors", "keras_ser.utils"),
    ("keras_ser.audio", "keras_ser.corpora", "keras_ser.text"),
    ("keras_ser.labels", "keras_ser.layers", "keras_ser.losses", "keras_ser.config", "keras_ser.training.registry"),
    ("keras_ser.models", "tfrecords_tools", "keras_ser.serving"),
    ("keras_ser.training",),
    ("keras_ser.cli",),
]


def modules():
    """`{module name: path}` of every Python file in the packages."""
    out = {}
    for pkg in PACKAGES:
        for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                    out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, f)
    return out


MODULES = modules()


def imports(name):
    """`(module imported, line)` for every import of a package module in `name` (anywhere in it,
    function-local imports included); `from a import b` counts `a.b` when that is a module."""
    tree = ast.parse(open(MODULES[name]).read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((sub if sub in MODULES else node.module, node.lineno))
    return [(m, line) for m, line in found if m.split(".")[0] in PACKAGES]


GRAPH = {name: sorted({m for m, _ in imports(name) if m in MODULES and m != name}) for name in MODULES}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_circle():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_the_training_floor_never_imports_a_system():
    for name in FLOOR:
        assert not set(GRAPH[name]) & SYSTEMS, f"{name} imports {sorted(set(GRAPH[name]) & SYSTEMS)}"
    for name in SYSTEMS:  # and no system imports another
        assert not set(GRAPH[name]) & (SYSTEMS - {name}), name


def _layer(name):
    best = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (i, p)
    return best[0]


def test_nothing_imports_upwards():
    bad = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
           for a, targets in GRAPH.items() for b in targets if _layer(b) > _layer(a)]
    assert bad == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_names_of_another_module(name):
    """`from x import _name` and `module._name` on an imported module are reaching into another
    module's internals."""
    tree = ast.parse(open(MODULES[name]).read())
    aliases = {}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    bad.append(f"line {node.lineno}: from {node.module} import {a.name}")
                if f"{node.module}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            bad.append(f"line {node.lineno}: {node.value.id}.{node.attr} ({aliases[node.value.id]})")
    assert bad == []
