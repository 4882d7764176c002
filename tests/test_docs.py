"""The README is a short guide and docs/ holds the rest: the links resolve, and neither points outside the
repository or at issue numbers."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ARRIVING = {"docs/security.md", "docs/timeline.md"}  # linked from the README; written on other branches


def test_the_readme_is_a_short_guide_with_contents():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert "## Contents" in text
    for command in ("pip install -r requirements.txt", "streamlit run app.py", "python -m pytest -q"):
        assert command in text


def test_links_resolve_and_stay_inside_the_repository():
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            path = (page.parent / target).resolve()
            rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
            if not path.exists() and rel not in ARRIVING:
                broken.append(f"{page.name}: {target}")
        assert "../shared" not in text, page.name
        assert not re.search(r"\b[Ii]ssues? #?\d+", text), page.name
    assert broken == []
