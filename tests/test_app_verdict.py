"""The verdict and the "why" of a match in the app, on hand-built results (no model runs): the Match page's green
or amber banner, each frame's query region beside the catalogue region it matched, the product cards' matched
photos, and the Evaluate page's run settings and uncertain clips."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.apptest import assert_clean, open_app, page_text, use_catalogue

from engine.config import Settings
from engine.eval.evaluate import metrics, save_report
from engine.io.catalogue import Catalogue, load_catalogue
from engine.io.video import sample_frames
from engine.types import (ClipOutcome, EvalReport, FrameVote, MatchResult, Neighbour, OpenSetOutcome, ProductScore,
                          RegionMatch)
from engine.workspace import report_path
from ui.names import bare_name

FRAMES = 3


def _frame(index: int, cat: Catalogue, sims: dict[str, float]) -> FrameVote:
    """A frame whose one region matched each product's first annotated region with the given similarity."""
    neighbours = tuple(Neighbour(cat.products[pid].regions[-1], sim)
                       for pid, sim in sorted(sims.items(), key=lambda kv: -kv[1]))
    region = RegionMatch((20.0, 40.0, 250.0, 460.0), 0.9, "person", "", neighbours, match_box=(20.0, 120.0, 250.0, 300.0))
    voted = neighbours[0].product_id
    return FrameVote(index, index / 25, (region,), voted, neighbours[0].similarity, "detector", dict(sims),
                     neighbours[0].similarity - neighbours[1].similarity)


def _result(cat: Catalogue, clip: Path, per_frame: list[dict[str, float]]) -> MatchResult:
    """A match of the clip's sampled frames; products ranked by evidence (mean of their per-frame best)."""
    indices = [f.index for f in sample_frames(clip, FRAMES)]
    frames = tuple(_frame(i, cat, sims) for i, sims in zip(indices, per_frame))
    ranking = []
    for pid in per_frame[0]:
        votes = tuple(f.frame_index for f in frames if f.voted_product == pid)
        mean = sum(f.product_similarity[pid] for f in frames) / len(frames)
        best = max(f.product_similarity[pid] for f in frames)
        ranking.append(ProductScore(pid, cat.products[pid].name, len(votes), len(votes) / len(frames), best, mean,
                                    votes, cat.products[pid].cover_image))
    ranking.sort(key=lambda p: (-p.mean_similarity, -p.votes))
    return MatchResult(clip.name, frames, tuple(ranking), {"total": 0.5}, {"frames": FRAMES})


@pytest.fixture()
def demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo_dir: Path) -> Catalogue:
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path))
    use_catalogue(monkeypatch, demo_dir, FRAMES)
    return load_catalogue(demo_dir)


def _match_page(monkeypatch: pytest.MonkeyPatch, cat: Catalogue, result: MatchResult, clip: Path):
    """The Match page after uploading ``clip``, with the match itself replaced by ``result``."""
    import ui.matching
    import ui.state

    monkeypatch.setattr(ui.state, "get_engine", lambda settings, catalogue: None)
    monkeypatch.setattr(ui.state, "engine_key", lambda settings, catalogue: "test")
    monkeypatch.setattr(ui.matching, "analyse_cached", lambda sha, key, engine, source, progress: ui.matching.Analysis(
        source.name, result, tuple(None for _ in result.frames)))
    at = open_app()
    at.file_uploader(key="match.upload").set_value(("live.mp4", clip.read_bytes(), "video/mp4")).run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    return at


def test_an_uncertain_match_shows_the_amber_banner_naming_the_runner_up(demo: Catalogue,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = list(demo.products)[:3]
    clip = Path(demo.clips[a].path or "")
    result = _result(demo, clip, [{a: 0.80, b: 0.79, c: 0.5}, {a: 0.78, b: 0.80, c: 0.5}, {a: 0.81, b: 0.79, c: 0.4}])
    assert result.verdict.level == "uncertain" and result.verdict.runner_up == b
    at = _match_page(monkeypatch, demo, result, clip)
    warnings = [w.value for w in at.warning]
    assert any("Uncertain" in w and bare_name(demo.products[b].name, b) in w and f"({b})" in w for w in warnings)
    assert not [s.value for s in at.success if "is shown" in s.value]


def test_a_match_not_in_the_catalogue_shows_the_grey_outcome_with_the_closest(demo: Catalogue,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    a, b, c = list(demo.products)[:3]
    clip = Path(demo.clips[a].path or "")
    scattered = _result(demo, clip, [{a: 0.80, b: 0.79, c: 0.78}, {a: 0.79, b: 0.80, c: 0.78},
                                     {a: 0.80, b: 0.78, c: 0.79}])  # one vote each: no product consistently nearest
    frames = tuple(replace(f, member_similarity=(dict(f.product_similarity), {**f.product_similarity, b: 0.9},
                                                 {**f.product_similarity, c: 0.9})) for f in scattered.frames)
    result = replace(scattered, frames=frames)
    assert result.verdict.absent and result.verdict.closest[0] == a
    at = _match_page(monkeypatch, demo, result, clip)
    text = page_text(at)
    assert "Not in the catalogue." in text and "not a match" in text
    assert f"({a})" in text and f"({b})" in text
    # its first card is the nearest product, not a "Best match"
    assert "Best match</span>" not in text and "Nearest, not a match</span>" in text
    assert not [s.value for s in at.success if "is shown" in s.value]
    assert not [w.value for w in at.warning if "Uncertain" in w.value]
    # the correction's product picker does not offer the nearest product the verdict has just called not a match
    assert [sb.value for sb in at.selectbox if sb.key.endswith(".clip.product")] == [None]


def test_a_confident_match_shows_the_green_banner_and_why_each_frame_voted(demo: Catalogue,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = list(demo.products)[:3]
    clip = Path(demo.clips[a].path or "")
    result = _result(demo, clip, [{a: 0.86, b: 0.70, c: 0.5}, {a: 0.84, b: 0.72, c: 0.5}, {a: 0.80, b: 0.83, c: 0.4}])
    assert result.verdict.confident
    at = _match_page(monkeypatch, demo, result, clip)
    assert at.success and "is shown in" in at.success[0].value and demo.products[a].name in at.success[0].value
    assert "Best match</span>" in page_text(at) and "Nearest, not a match" not in page_text(at)
    assert not [w.value for w in at.warning if "Uncertain" in w.value]
    assert [sb.value for sb in at.selectbox if sb.key.endswith(".clip.product")] == [a]  # the picker starts on it
    # every frame: its query region (decoded from the upload) beside the catalogue region it matched
    captions = [c for img in at.image for c in img.captions]
    assert captions.count("query") == FRAMES and captions.count("catalogue") == FRAMES
    text = page_text(at)
    assert "similarity 0.83" in text and "similarity 0.86" in text
    # the category under a frame is that of the catalogue region the voted product matched, said apart from the
    # product it voted for (issue 32: "mid-length skirt 0.85" under a product called "short skirt")
    matched = demo.products[b].regions[-1].category
    from engine.categories import english
    assert f">region: {english(matched)}</div><div class=\"lm-line\">similarity 0.83</div>" in text
    assert "voted for <b>" in text


def test_the_evaluate_page_says_how_it_ran_and_counts_uncertain_clips(demo: Catalogue, demo_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = list(demo.products)[:3]
    clip = Path(demo.clips[a].path or "")
    close = _result(demo, clip, [{a: 0.80, b: 0.79, c: 0.5}, {a: 0.78, b: 0.80, c: 0.5}, {a: 0.81, b: 0.79, c: 0.4}])
    clear = _result(demo, clip, [{a: 0.86, b: 0.70, c: 0.5}, {a: 0.84, b: 0.72, c: 0.5}, {a: 0.80, b: 0.83, c: 0.4}])
    outcomes = [ClipOutcome("900001", a, 1, a, close), ClipOutcome("900002", a, 1, a, clear)]
    settings = Settings.from_env(windows="refined", rank_by="similarity").flat()
    removed = (OpenSetOutcome("900001", a, b, close), OpenSetOutcome("900002", a, a, clear))
    report = EvalReport(str(demo_dir), settings, metrics(outcomes), tuple(outcomes),
                        index={"model_key": "efficientnet-lite0-gem+centred/1234", "n_products": 5, "n_items": 15},
                        open_set=removed)
    save_report(report, report_path(Settings.from_env(), demo_dir))
    at = open_app("evaluate")
    assert_clean(at)
    metric = {m.proto.label: m.value for m in at.metric}
    assert metric["Confident clips"] == "1 of 2"
    text = page_text(at)
    assert ("windows: garment windows, best refined · domain centring: on · ranked by: evidence, then votes "
            f"· frames: {FRAMES} per clip") in text
    assert "uncertain: 900001" in text
    assert "1 of 2 still confident (wrong), 0 not in catalogue, 1 uncertain" in text  # the open-set run
    assert "Three-outcome verdict, leave-one-clip-out" in text
    table = at.dataframe[0].value
    assert list(table["sure"]) == ["uncertain", "confident"]
