"""The Inspect page: no report yet, a report with a known error case, an unreadable report."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.apptest import assert_clean, open_app, page_text, use_catalogue

from engine.io.catalogue import load_catalogue
from engine.eval.evaluate import metrics, save_report
from engine.types import ClipOutcome, EvalReport

WRONG_CLIP, WRONG_TRUTH = "900002", "900004"  # clip 900002 shows 900002; the report claims 900004


@pytest.fixture(scope="module")
def error_report(engine, demo_dir: Path) -> EvalReport:
    """A real evaluation of two clips, with the truth of one edited so that its match is wrong."""
    outcomes = []
    for vid, truth in (("900001", "900001"), (WRONG_CLIP, WRONG_TRUTH)):
        result = engine.match(demo_dir / "video" / f"{vid}.mp4")
        outcomes.append(ClipOutcome(vid, truth, result.rank_of(truth), result.top.product_id, result))
    return EvalReport(str(demo_dir), engine.settings.flat(), metrics(outcomes), tuple(outcomes),
                      created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


@pytest.fixture()
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo_dir: Path) -> Path:
    """A home of its own, so that reports written by other tests do not show here."""
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path))
    use_catalogue(monkeypatch, demo_dir)
    return tmp_path


def test_without_a_report_it_offers_to_run_the_evaluation(home: Path) -> None:
    at = open_app("inspect")
    assert any("No evaluation report yet" in i.value for i in at.info)
    assert at.button(key="inspect.run").label == "Run the evaluation now"
    assert at.get("page_link")


def test_a_known_error_is_shown_side_by_side(home: Path, error_report: EvalReport, demo_dir: Path) -> None:
    assert error_report.metrics.top1 == 0.5
    save_report(error_report, home / "reports" / "edited.json")
    names = {pid: p.name for pid, p in load_catalogue(demo_dir).products.items()}
    at = open_app("inspect")
    text = page_text(at)
    assert "Correct · 1" in text and "Incorrect · 1" in text
    assert f"instead of **{names[WRONG_TRUTH]}**" in text

    at.toggle(key="inspect.errors_only").set_value(True).run()
    assert_clean(at)
    clips = at.selectbox(key="inspect.clip")
    assert clips.value == WRONG_CLIP
    assert clips.options == [f"✗ {WRONG_CLIP} · {names[WRONG_TRUTH]}"]  # the correct clip has no wrong frame
    captions = [c for img in at.image for c in img.captions]
    n_frames = len(error_report.clips[1].result.frames)
    assert sum(c == "Query: the frame's region" for c in captions) == n_frames
    assert sum(c.startswith(f"Chosen: {names[WRONG_CLIP]}") for c in captions) == n_frames
    assert sum(c.startswith(f"True: {names[WRONG_TRUTH]}") for c in captions) == n_frames
    assert "wrong product" in page_text(at) and "right product" not in page_text(at)
    # every crop was drawn: query regions from the clip, chosen and true products from the catalogue
    assert all(len(img.value) == 1 for img in at.image)

    at.toggle(key="inspect.errors_only").set_value(False).run()
    assert_clean(at)
    assert len(at.selectbox(key="inspect.clip").options) == 2


def test_an_unreadable_report_is_an_error_not_a_traceback(home: Path) -> None:
    (home / "reports").mkdir(parents=True)
    (home / "reports" / "broken.json").write_text("{ not json", encoding="utf-8")
    at = open_app("inspect")
    assert at.error and "not a readable evaluation report" in at.error[0].value
