"""The seams between packages, read from the source (``ast``): no import cycles, layers only point down, no
private name is imported from another module; and the house's limits: modules of at most 350 lines, one public way
to match, models asked through declared Protocols, few imports hidden inside functions.

Every import counts, also one inside a function: a deferred import keeps ``import engine`` fast, but the arrow
it draws is still part of the architecture. An import under ``if TYPE_CHECKING:`` (for annotations only, never
run) must point down or sideways like any other, but is not an arrow at run time, so it cannot close a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "ui", "pages")

# Lowest first. A module may import from its own layer or below, never above. The longest matching prefix wins.
LAYERS: list[tuple[str, ...]] = [
    ("engine", "engine.types", "engine.config", "engine.errors", "engine.geometry", "engine.categories"),
    ("engine.io", "engine.render"),
    ("engine.models",),
    ("engine.index",),
    ("engine.pipeline", "engine.workspace"),
    ("engine.training",),
    ("engine.eval",),
    ("engine.cli", "engine.__main__"),
    ("ui",),
    ("pages",),
]


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's ``__init__``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


MODULES = _modules()


def _source_of(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the import nodes under ``if TYPE_CHECKING:``."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def _imports() -> list[tuple[str, str, str, int, bool]]:
    """(importer, imported module, imported name or "", line, at run time) for every import of a project module."""
    found = []
    for module, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_only(tree)
        for node in ast.walk(tree):
            runtime = id(node) not in typing_only
            if isinstance(node, ast.Import):
                found += [(module, a.name, "", node.lineno, runtime) for a in node.names if a.name in MODULES]
            elif isinstance(node, ast.ImportFrom):
                source = _source_of(module, is_package, node)
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in MODULES:
                        found.append((module, submodule, "", node.lineno, runtime))
                    elif source in MODULES:
                        found.append((module, source, alias.name, node.lineno, runtime))
    return [row for row in found if row[1] != row[0]]


IMPORTS = _imports()


def _layer(module: str) -> int:
    best, best_len = None, -1
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = level, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}"
    return best


def test_the_reader_sees_the_project():
    assert {"engine.pipeline.engine", "ui.state", "pages.match"} <= set(MODULES)
    assert any(src == "engine.pipeline.engine" and dst == "engine.pipeline.search" for src, dst, *_ in IMPORTS)


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_layers_only_point_down():
    upward = [f"{src}:{line} imports {dst} (layer {_layer(dst)} above {_layer(src)})"
              for src, dst, _, line, _ in IMPORTS if _layer(dst) > _layer(src)]
    assert upward == []


def test_no_private_name_crosses_modules():
    private = [f"{src}:{line} imports {name} from {dst}" for src, dst, name, line, _ in IMPORTS
               if name.startswith("_") and not name.startswith("__")]
    assert private == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycles():
    edges: dict[str, set[str]] = {}
    for src, dst, _, _, runtime in IMPORTS:
        if runtime:
            edges.setdefault(src, set()).add(dst)
    assert _cycles(edges) == []


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": {"c"}}, []),
])
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert _cycles(edges) == expected


def _defined_names(path: Path) -> set[str]:
    """Every name a module defines or imports, at any depth (functions, classes, methods, assignments)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_dotted_names_in_docstrings_and_comments_exist():
    """``engine.models.garments.GarmentHead`` in a docstring or a comment names a module that exists, and the name
    after it is defined there: a rename leaves no stale pointer behind."""
    import io
    import re
    import tokenize

    dotted = re.compile(r"(?<![\w.])((?:engine|ui|pages)\.[A-Za-z_][\w.]*[A-Za-z0-9_])")
    stale = []
    for module, (path, _) in MODULES.items():
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
            if tok.type not in (tokenize.STRING, tokenize.COMMENT):
                continue
            for name in dotted.findall(tok.string):
                parts = name.split(".")
                known = max((k for k in range(1, len(parts) + 1) if ".".join(parts[:k]) in MODULES), default=0)
                rest = parts[known:]
                if rest and rest[0] != "py" and rest[0] not in _defined_names(MODULES[".".join(parts[:known])][0]):
                    stale.append(f"{module}:{tok.start[0]} {name}")
    assert stale == []


def test_tests_do_not_import_scripts_and_the_project_does_not_import_tests():
    """Test support lives in tests/support/; scripts/ are entry points, and the library never reaches into tests."""
    def roots(path: Path) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
        return found

    tests = sorted((ROOT / "tests").rglob("*.py"))
    assert len(tests) > 20
    assert [p.name for p in tests if "scripts" in roots(p)] == []
    assert [m for m, (p, _) in MODULES.items() if roots(p) & {"tests", "support", "scripts"}] == []


# The house, third pass (issue 33): limits a reader can check, read from the source like the rules above.
MAX_LINES = 350
MAX_LOCAL_IMPORTS = 40
MAX_MODEL_GETATTR = 3
MATCHING_WORDS = ("match", "evidence", "query", "detect", "search")


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_module_is_over_350_lines():
    long = {m: n for m, (path, _) in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_engine_has_at_most_two_public_ways_to_match():
    """``Engine.match(source)`` for a clip, clips, frames or a stream, and ``frame_evidence`` (the timeline's
    building block): a method whose name says it matches, queries, detects, searches or gathers evidence."""
    tree = ast.parse(MODULES["engine.pipeline.engine"][0].read_text(encoding="utf-8"))
    engine = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "Engine")
    public = [n.name for n in engine.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
              and not n.name.startswith("_")
              and not any("property" in ast.unparse(d) for d in n.decorator_list)]  # the detector, the embedder
    matching = sorted({name for name in public if any(word in name for word in MATCHING_WORDS)})  # overloads once
    assert "match" in matching and len(matching) <= 2, matching


def test_models_are_asked_through_declared_protocols_not_probed():
    """Capabilities are ``runtime_checkable`` Protocols checked with ``isinstance``: at most three ``getattr``
    calls in engine/pipeline and engine/models, and no ``type: ignore`` there."""
    probes, ignores = [], []
    for module, (path, _) in MODULES.items():
        if not module.startswith(("engine.pipeline", "engine.models")):
            continue
        text = path.read_text(encoding="utf-8")
        probes += [f"{module}:{n.lineno}" for n in ast.walk(ast.parse(text))
                   if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr"]
        ignores += [f"{module}:{i}" for i, line in enumerate(text.splitlines(), 1) if "type: ignore" in line]
    assert len(probes) <= MAX_MODEL_GETATTR, probes
    assert ignores == []


def test_few_imports_hide_inside_functions():
    """A project import inside a function hides an arrow of the graph above; the few left wait for an optional
    heavy dependency (or keep ``python -m engine --help`` fast)."""
    local = _local_imports()
    assert len(local) <= MAX_LOCAL_IMPORTS, f"{len(local)} function-local imports: {local}"


def _local_imports() -> list[str]:
    found = []
    for module, (path, _) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for f in _functions(tree):
            for n in ast.walk(f):
                if isinstance(n, ast.ImportFrom) and (n.level > 0 or (n.module or "").split(".")[0] in PACKAGES):
                    found.append(f"{module}:{n.lineno}")
                elif isinstance(n, ast.Import) and any(a.name.split(".")[0] in PACKAGES for a in n.names):
                    found.append(f"{module}:{n.lineno}")
    return sorted(set(found))
