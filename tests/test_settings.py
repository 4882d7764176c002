"""Settings in one place: every LIVEMATCH_* variable is declared and read in engine/config.py, every closed set is
an Enum whose bad values are refused in one line, the command line's settings options are made from the fields
(with their help and defaults), and the window strategy has one spelling."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from enum import Enum
from pathlib import Path

import pytest

from engine.choices import Device, IndexBackend, RankBy, Runtime, Windows
from engine.cli import COMMANDS, build_parser, main
from engine.cli.common import APP_ONLY
from engine.config import (OTHER_VARIABLES, TEST_VARIABLES, Settings, SettingError, environment_variables,
                           set_from_environment, variable)

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"LIVEMATCH_[A-Z0-9_]*[A-Z0-9]")
NOT_VARIABLES = {"LIVEMATCH_BENCH"}  # a line prefix the bench's child processes print (engine.eval.startup.MARK)


def _names_in(paths) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in set(NAME.findall(path.read_text(encoding="utf-8"))) - NOT_VARIABLES:
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_variable_the_project_reads_is_declared_in_config():
    project = [p for d in ("engine", "ui", "pages", "scripts") for p in (ROOT / d).rglob("*.py")
               if p != ROOT / "engine" / "config.py"] + [ROOT / "app.py"]
    declared = set(environment_variables())
    undeclared = {n: sorted(w) for n, w in _names_in(project).items() if n not in declared}
    assert undeclared == {}
    tests_and_ci = list((ROOT / "tests").rglob("*.py")) + [ROOT / ".ci" / "run"]
    unknown = {n: sorted(w) for n, w in _names_in(tests_and_ci).items() if n not in declared | set(TEST_VARIABLES)}
    assert unknown == {}


def test_the_declared_variables_are_the_fields_and_the_others():
    names = environment_variables()
    assert names["LIVEMATCH_FRAMES"].startswith("setting detection.frames (default 10")
    assert names["LIVEMATCH_MILVUS_URI"].startswith("setting index.milvus_uri")
    assert set(OTHER_VARIABLES) <= set(names) and not set(TEST_VARIABLES) & set(names)
    assert len(names) == len(Settings.field_names()) + len(OTHER_VARIABLES)


def _option_help(command: list[str]) -> dict[str, str]:
    """Option dest -> its help text, for a subcommand."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.dest: a.help or "" for a in sub.choices[command[0]]._actions}


@pytest.mark.parametrize("command", ["match", "evaluate", "build-index"])
def test_the_help_shows_the_settings_defaults(command):
    defaults = Settings().flat()
    shown = {dest: text for dest, text in _option_help([command]).items()
             if dest in defaults and defaults[dest] != "" and "default" in text}  # "": described ("default: demo")
    assert {"frames", "windows", "det_threshold", "rank_by", "refine_top"} <= set(shown)
    for dest, text in shown.items():
        value = defaults[dest]
        expected = (f"default: {'on' if value else 'off'}" if isinstance(value, bool) else
                    f"default {value:g}" if isinstance(value, float) else f"default {value}")
        assert expected in text, (dest, text)


def test_the_window_strategy_has_one_spelling():
    parser = build_parser()
    args = parser.parse_args(["match", "c.mp4", "--windows", "refined", "--refine-top", "5"])
    assert (args.windows, args.refine_top) == ("refined", 5)
    for old in (["--no-windows"], ["--refine-windows", "3"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["match", "c.mp4", *old])


# ---------------------------------------------------------------------------------------------- read in one place
READERS: set[str] = set()  # modules allowed to read LIVEMATCH_* themselves: none


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines that read a LIVEMATCH_* variable from os.environ: .get(...), [...], getenv(...) or ... in os.environ."""
    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    def names_variable(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("LIVEMATCH_")

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args \
                and names_variable(node.args[0]) and (is_environ(node.func.value) or node.func.attr == "getenv"):
            lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load) \
                and names_variable(node.slice):
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and names_variable(node.left) and any(is_environ(c) for c in node.comparators):
            lines.append(node.lineno)
    return lines


def test_only_config_reads_the_variables():
    found = {}
    for d in ("engine", "ui", "pages"):
        for path in (ROOT / d).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if rel != "engine/config.py" and rel not in READERS:
                lines = _environment_reads(ast.parse(path.read_text(encoding="utf-8")))
                if lines:
                    found[rel] = lines
    assert found == {}
    probe = ast.parse('import os\nos.environ.get("LIVEMATCH_x")\nos.environ["LIVEMATCH_y"]\n"LIVEMATCH_z" in os.environ\n')
    assert _environment_reads(probe) == [2, 3, 4]  # the check sees each way of reading one


def test_variables_are_read_through_config(monkeypatch):
    monkeypatch.setenv("LIVEMATCH_CPU_THREADS", "3")
    from engine.config import cpu_threads

    assert variable("LIVEMATCH_CPU_THREADS") == "3" and cpu_threads() == 3
    monkeypatch.setenv("LIVEMATCH_CPU_THREADS", "many")
    assert cpu_threads() is None
    with pytest.raises(KeyError, match="not declared"):
        variable("LIVEMATCH_undeclared")
    monkeypatch.delenv("LIVEMATCH_WINDOWS", raising=False)
    assert not set_from_environment("windows")
    monkeypatch.setenv("LIVEMATCH_WINDOWS", "exhaustive")
    assert set_from_environment("windows")


# ----------------------------------------------------------------------------------------------- closed sets: Enums
def test_every_closed_set_is_an_enum_that_reads_as_its_value():
    kinds = {name: kind for name, (_, _, kind) in Settings.settings_fields().items()}
    enums = {name for name, kind in kinds.items() if issubclass(kind, Enum)}
    assert enums == {"runtime", "precision", "category_source", "product_pooling", "rank_by", "windows",
                     "index_backend", "editing"}
    assert kinds["domain_mean"] is str  # "auto", "none" or a .npy path: not a closed set
    assert kinds["device"] is Device  # "auto", "cpu", "cuda" or "cuda:N" (one GPU of several): a checked text
    assert Settings().with_(device="CUDA:1").models.device == "cuda:1"
    s = Settings().with_(index_backend="FAISS", device="cpu", rank_by=RankBy.VOTES)
    assert (s.index.index_backend, s.models.device, s.search.rank_by) == (IndexBackend.FAISS, Device.CPU, "votes")
    # text made from them is what the plain strings made: folder names, keys, reports
    assert f"-{s.index.index_backend}" == "-faiss" and str(Runtime.OPENVINO) == "openvino" and f"{Windows.POSE}" == "pose"
    assert json.loads(json.dumps(s.flat()))["index_backend"] == "faiss" and Settings.from_flat(s.flat()) == s


@pytest.mark.parametrize("field, value, message", [
    ("device", "gpu", "device='gpu': expected auto, cpu, cuda or cuda:N"),
    ("runtime", "tensorrt", "runtime='tensorrt': expected one of auto, torch, onnxruntime, openvino"),
    ("frames", "ten", "frames='ten': expected a whole number"),
    ("side_by_side", "maybe", "side_by_side='maybe': expected one of 1, true, yes, on, 0, false, no, off"),
])
def test_a_bad_value_is_refused_naming_what_the_field_takes(field, value, message):
    with pytest.raises(SettingError) as e:
        Settings().with_(**{field: value})
    assert str(e.value) == message


def test_a_bad_value_from_the_environment_names_its_variable(monkeypatch, capsys):
    monkeypatch.setenv("LIVEMATCH_RANK_BY", "Likes")
    with pytest.raises(SettingError, match=r"^LIVEMATCH_RANK_BY='Likes': expected one of similarity, votes$"):
        Settings.from_env()
    assert main(["corrections"]) == 2  # the command line: one line, exit status 2
    assert capsys.readouterr().err == "error: LIVEMATCH_RANK_BY='Likes': expected one of similarity, votes\n"


def test_a_bad_value_gives_one_line_from_the_command_line(tmp_path):
    env = {**os.environ, "LIVEMATCH_HOME": str(tmp_path), "LIVEMATCH_INDEX_BACKEND": "sqlite"}
    out = subprocess.run([sys.executable, "-m", "engine", "build-index"], cwd=ROOT, capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == "error: LIVEMATCH_INDEX_BACKEND='sqlite': expected one of annoy, faiss, milvus\n"
    env.pop("LIVEMATCH_INDEX_BACKEND")
    out = subprocess.run([sys.executable, "-m", "engine", "match", "c.mp4", "--device", "gpu"], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1].endswith("argument --device: 'gpu': expected auto, cpu, cuda or cuda:N")


# ------------------------------------------------------------------------------------- options made from the fields
def _commands_with_settings() -> dict[str, dict[str, object]]:
    """Subcommand -> {settings field: its option's action} for every subcommand that takes settings."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    names = Settings.field_names()
    out = {}
    for command, parser in sub.choices.items():
        options = {a.dest: a for a in parser._actions if a.dest in names and getattr(a, "livematch_setting", False)}
        if options:
            out[command] = options
    return out


def test_every_settings_field_has_an_option_with_help():
    commands = _commands_with_settings()
    assert set(commands) == set(COMMANDS) - {"demo", "models", "bench-index"}  # those three take no settings
    fields = Settings.settings_fields()
    expected = {n for n, (group, _, _) in fields.items() if group not in APP_ONLY}
    assert len(expected) == len(fields) - 3  # the app's access group: catalogue_roots, editing, stream_allow
    for command, options in commands.items():
        skipped = {"seed"} if command.startswith("train-") else set()  # train's own --seed
        assert set(options) == expected - skipped, command
        for name, action in options.items():
            group, f, kind = fields[name]
            assert action.help.startswith(f.metadata["help"].replace("%", "%%")) and "default" in action.help
            assert action.default is None  # a field not given keeps the environment's value
            if issubclass(kind, Enum):
                assert action.choices == [m.value for m in kind]
            elif kind in (int, float):
                assert action.type is kind
    for name, (_, f, _) in fields.items():  # and every field, access too, has the help its variable shows
        assert f.metadata["help"] and f.metadata["help"] in environment_variables()[f"LIVEMATCH_{name.upper()}"]


def test_the_old_option_names_still_work():
    parser = build_parser()
    args = parser.parse_args(["match", "c.mp4", "--every", "0.5", "--shop", "s1", "--index-dir", "ix", "--frames", "3",
                              "--runtime", "OpenVINO", "--no-side-by-side"])
    assert (args.stream_every, args.shop, args.index_dir, args.frames, args.runtime, args.side_by_side) == \
        (0.5, "s1", "ix", 3, "openvino", False)
    args = parser.parse_args(["correct", "c.mp4", "--product", "p", "--frames", "0,2", "--sample", "4"])
    assert (args.positions, args.frames) == ("0,2", 4)
    args = parser.parse_args(["train-embedding", "--seed", "3", "--steps", "5"])
    assert (args.seed, args.steps) == (3, 5)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_and_runs_a_function(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([command, "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: python -m engine {command}")
    module, name = COMMANDS[command].split(":")
    assert callable(getattr(__import__(module, fromlist=[name]), name))


def test_the_help_stays_short_and_fast():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "engine", "match", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    usage = out.stdout.split("\n\n")[0]
    assert "[--<setting> VALUE]" in usage and "--n-trees" not in usage  # the settings are listed below, by group
    assert "models settings:" in out.stdout and "LIVEMATCH_<NAME>" in out.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "openvino", "engine.pipeline.engine"}  # commands import the library when they run


def test_the_commands_modules_import_without_the_optional_packages():
    """Their imports are at the top, so each must import where OpenVINO, ONNX Runtime, FAISS, hnswlib, Milvus and Ray
    are missing (those are imported where they are used)."""
    code = ("import importlib, sys\n"
            "for m in ('openvino', 'onnxruntime', 'nncf', 'faiss', 'hnswlib', 'pymilvus', 'ray'): sys.modules[m] = None\n"
            "from engine.cli import COMMANDS\n"
            "for m in sorted({t.split(':')[0] for t in COMMANDS.values()}): importlib.import_module(m)\n"
            "print('imported')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "imported", out.stderr
