"""Helpers shared by the AppTest suites (tests/test_app_*.py): not a test module itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TIMEOUT = 600  # seconds per script run: the real models run on CPU
FRAMES = 3


def use_catalogue(monkeypatch: pytest.MonkeyPatch, catalogue: Path | str, frames: int = FRAMES) -> None:
    """Point the app at a catalogue (empty: the built-in demo) with few frames per clip."""
    monkeypatch.setenv("LIVEMATCH_CATALOGUE", str(catalogue))
    monkeypatch.setenv("LIVEMATCH_FRAMES", str(frames))


def open_app(page: str | None = None) -> AppTest:
    """Run the app once, then switch to a page of pages/ (None: the default page, Match)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert_clean(at)
    if page is not None:
        at.switch_page(f"pages/{page}.py").run()
        assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No exception element (a traceback) anywhere on the page."""
    assert not at.exception, [e.value for e in at.exception]


def page_text(at: AppTest) -> str:
    """All the text of the page: markdown, captions, alerts, headings, HTML blocks, image captions."""
    parts: list[str] = []
    for kind in ("markdown", "caption", "success", "info", "warning", "error", "title", "subheader", "header"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [e.value for e in at.get("html")]
    parts += [c for img in at.image for c in img.captions]
    return "\n".join(parts)


def plotly_figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
