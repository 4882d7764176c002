import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"


def test_no_module_under_engine_imports_streamlit():
    offenders = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "streamlit"]
    assert offenders == []


def test_import_engine_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, engine, engine.types, engine.config, engine.io.catalogue, engine.workspace; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ENGINE.parent)
    assert out.stdout.strip() == "False", out.stderr


def test_weights_and_arrays_never_unpickle():
    """torch.load always has weights_only=True and np.load never allows pickles."""
    bad = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", "")
                kw = {k.arg: k.value for k in node.keywords}
                if owner == "torch" and node.func.attr == "load":
                    if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                        bad.append(f"{path.name}:{node.lineno} torch.load without weights_only=True")
                if owner == "np" and node.func.attr == "load":
                    if not (isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False):
                        bad.append(f"{path.name}:{node.lineno} np.load without allow_pickle=False")
    assert bad == []
