"""The README's screenshots come from this release: none was committed before the last change to the pages and the
ui code they show (git history, not file times: a fresh clone's files all carry the checkout's time).

Regenerate them with ``python scripts/screenshots.py`` (README, Tests) and commit them with, or after, the change."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from support.requires import missing

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ("pages", "ui", "app.py")  # what a screenshot shows: the pages and what they share


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def _committed_at(*paths: str) -> int | None:
    out = _git("log", "-1", "--format=%ct", "--", *paths)
    return int(out) if out else None


def _readme_screenshots() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"\((assets/screenshots/[\w.-]+\.png)\)", text)))


def test_the_readme_shows_screenshots_that_exist() -> None:
    shots = _readme_screenshots()
    assert shots, "the README shows no screenshot"
    missing = [s for s in shots if not (ROOT / s).is_file()]
    assert not missing, f"the README shows screenshots that do not exist: {missing}"


def test_readme_screenshots_are_not_older_than_the_pages_they_show() -> None:
    if shutil.which("git") is None:
        missing("git (the screenshots' age is read from git history)", "LIVEMATCH_REQUIRE_GIT", "apt-get install git")
    try:
        inside = _git("rev-parse", "--is-inside-work-tree") == "true"
    except (subprocess.CalledProcessError, OSError):
        inside = False
    if not inside:
        missing("a git checkout (the screenshots' age is read from git history)", "LIVEMATCH_REQUIRE_GIT")
    code = _committed_at(*SHOWN)
    if code is None:
        missing("the pages' git history (an export, not a clone)", "LIVEMATCH_REQUIRE_GIT")
    stale = []
    for shot in _readme_screenshots():
        at = _committed_at(shot)
        if at is None or at < code:
            stale.append(shot)
    changed = _git("log", "-1", "--format=%h %s", "--", *SHOWN)[:100]
    assert not stale, (f"screenshots older than the last change to the pages ({changed}): {stale}; regenerate them "
                       "with python scripts/screenshots.py and commit them")
