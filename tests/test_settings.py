"""Settings in one place: every LIVEMATCH_* variable is declared in engine/config.py, the command line's help
shows the settings' own defaults, and the window strategy has one spelling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.config import OTHER_VARIABLES, TEST_VARIABLES, Settings, environment_variables

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
        assert f"default {value:g}" in text if isinstance(value, float) else f"default {value}" in text, (dest, text)


def test_the_window_strategy_has_one_spelling():
    parser = build_parser()
    args = parser.parse_args(["match", "c.mp4", "--windows", "refined", "--refine-top", "5"])
    assert (args.windows, args.refine_top) == ("refined", 5)
    for old in (["--no-windows"], ["--refine-windows", "3"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["match", "c.mp4", *old])
