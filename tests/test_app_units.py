"""The app's plain-Python parts: drawing, clip sources, progress, inspection rows, charts and tables."""

from __future__ import annotations

import math
import os
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.eval.evaluate import metrics
from engine.types import ClipOutcome, EvalReport
from engine.render import (Mark, annotate_frame, annotate_regions, ascii_label, draw_marks, fit, padded_crop,
                           region_marks, thumbnail)
from engine.types import FrameVote, MatchResult, Neighbour, ProductScore, RegionMatch, RegionRef
from ui.charts import (clip_table, heat_label, margin_chart, rank_chart, run_line, run_settings, truth_margin,
                       uncertain_clips, votes_heatmap)
from ui.inspection import ProductInfo, compare_clip, compare_frame, visible_frames
from ui.matching import ClipSource, safe_filename
from ui.names import bare_name, clip_shows, product_label
from ui.progress import describe_evaluation, describe_index_build, describe_match, ease, run_with_progress


# --------------------------------------------------------------------------------------------- fixtures
def _region(neighbours: list[tuple[str, float]], category: str = "短裙", label: str = "person") -> RegionMatch:
    return RegionMatch(
        (10.0, 20.0, 110.0, 220.0), 0.8, label, category,
        tuple(Neighbour(RegionRef(pid, f"/cat/{pid}/0.jpg", (1.0, 2.0, 30.0, 40.0)), sim) for pid, sim in neighbours),
        match_box=(10.0, 60.0, 110.0, 150.0),
    )


def _frame(index: int, voted: str | None, sims: dict[str, float]) -> FrameVote:
    ranked = sorted(sims.items(), key=lambda kv: -kv[1])
    return FrameVote(index, index / 20, (_region(ranked[:2]),), voted, sims.get(voted, 0.0) if voted else 0.0,
                     "detector", sims)


@pytest.fixture()
def result() -> MatchResult:
    frames = (_frame(5, "A", {"A": 0.9, "B": 0.7, "C": 0.5}), _frame(15, "A", {"A": 0.8, "B": 0.75}),
              _frame(25, "B", {"A": 0.6, "B": 0.85}))
    ranking = (ProductScore("A", "Red skirt", 2, 2 / 3, 0.9, 0.77, (5, 15), "/cat/A/0.jpg"),
               ProductScore("B", "Blue top", 1, 1 / 3, 0.85, 0.77, (25,), "/cat/B/0.jpg"),
               ProductScore("C", "Green coat", 0, 0.0, 0.5, 0.17, (), None))
    return MatchResult("clip.mp4", frames, ranking, {"total": 1.0}, {"frames": 3})


# --------------------------------------------------------------------------------------------- render
def test_ascii_label_translates_categories_and_drops_other_glyphs() -> None:
    assert ascii_label("短裙") == "short skirt"
    assert ascii_label("新品 dress  2") == "dress 2"


def test_annotate_frame_draws_at_the_requested_size(result: MatchResult) -> None:
    image = np.full((480, 270, 3), 128, np.uint8)
    out = annotate_frame(image, result.frames[0], long_side=800)
    assert out.shape == (800, 450, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[100:300, 10:200], np.full_like(out[100:300, 10:200], 128))
    assert image.max() == 128  # the input is left alone


def test_whole_frame_regions_get_an_inset_outline() -> None:
    """When nobody is detected the whole frame is searched. A box on the frame's own border was cut in half and
    read as no box at all, so the whole-frame region is drawn as a white outline set just inside the border, tagged
    "whole frame"."""
    image = np.full((100, 100, 3), 200, np.uint8)
    whole = RegionMatch((0.0, 0.0, 100.0, 100.0), 0.0, "whole frame", "", (), match_box=(0.0, 30.0, 100.0, 60.0))
    vote = FrameVote(0, 0.0, (whole,), None, 0.0, "whole-frame", {})
    out = annotate_frame(image, vote)
    assert not np.array_equal(out[2:5, 40:60], image[2:5, 40:60])  # the inset outline
    assert not np.array_equal(out[10:90, 1:5], image[10:90, 1:5])  # ... down the left side too
    assert not np.array_equal(out[28:33, 80:100], image[28:33, 80:100])  # the matched window is drawn
    marks = region_marks(whole)
    assert [m.text for m in marks] == ["whole frame", "garment"] and marks[0].box[0] > 0


def test_the_window_tag_names_the_category_of_the_voted_products_region() -> None:
    """The k-NN label of a region may disagree with the product the frame voted for: the tag follows the vote."""
    region = RegionMatch((0.0, 0.0, 100.0, 100.0), 0.9, "person", "长裤", (
        Neighbour(RegionRef("B", "/b.jpg", (0.0, 0.0, 5.0, 5.0), "长裤"), 0.81),
        Neighbour(RegionRef("A", "/a.jpg", (0.0, 0.0, 5.0, 5.0), "短裙"), 0.80)), match_box=(0.0, 40.0, 100.0, 80.0))
    assert region_marks(region, product_id="A")[-1].text == "short skirt 0.80"
    assert region_marks(region)[-1].text == "trousers 0.81"  # no vote: the region's own label and best match


def test_marks_are_clipped_to_the_image_and_regions_drawn() -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    out = draw_marks(image, [Mark((-50, -50, 500, 500), "far out")])
    assert out.shape == image.shape
    ref = RegionRef("p", "x.jpg", (5.0, 5.0, 40.0, 50.0), "长裤", 1)
    assert annotate_regions(image, [ref], long_side=160).shape == (120, 160, 3)


def test_thumbnail_fit_and_crop() -> None:
    image = np.zeros((300, 100, 3), np.uint8)
    assert thumbnail(image, (64, 64)).shape == (64, 64, 3)
    assert fit(image, (50, 50)).shape == (50, 17, 3)
    assert fit(image, (1000, 1000)) is image
    assert padded_crop(image, (10, 10, 60, 110), pad=0.0).shape == (100, 50, 3)
    assert padded_crop(image, None) is image


# --------------------------------------------------------------------------------------------- clip sources
@pytest.mark.parametrize("name, expected", [
    ("my clip.mp4", "my_clip.mp4"),
    ("../../etc/passwd.mp4", "passwd.mp4"),
    ("C:\\Users\\me\\live.mov", "live.mov"),
    ("...", "clip.mp4"),
    ("no-extension", "no-extension.mp4"),
    ("直播.webm", "clip.webm"),
    ("Show.MKV", "Show.mkv"),
])
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_uploads_are_written_privately_and_removed() -> None:
    source = ClipSource.from_upload("../x.mp4", b"12345")
    assert len(source.sha256) == 64
    with source.materialise() as path:
        assert path.read_bytes() == b"12345" and path.name == "x.mp4"
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        folder = path.parent
    assert not folder.exists()
    with pytest.raises(RuntimeError), source.materialise() as path:
        folder = path.parent
        raise RuntimeError("matching failed")
    assert not folder.exists()


def test_catalogue_clips_are_used_in_place(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"abc")
    source = ClipSource.from_file(clip)
    with source.materialise() as path:
        assert path == clip
    assert clip.exists()


# --------------------------------------------------------------------------------------------- progress
def test_progress_descriptions_are_bounded_and_ordered() -> None:
    values = [describe_match(stage, 0.0, 0.0)[0] for stage in ("decode", "detect", "embed", "search", "vote")]
    assert values == sorted(values) and all(0 <= v <= 1 for v in values)
    assert describe_match("embed", 0.0, 1000.0)[0] < describe_match("search", 0.0, 0.0)[0]
    assert describe_match("vote", 1.0, 0.0)[0] == 1.0
    assert describe_index_build("embed", 0.5, 0.0)[1] == "Embedding catalogue images"
    assert 0.0 <= ease(0.0, 0.0) < ease(0.0, 5.0) < 1.0
    evaluation = describe_evaluation(4)
    assert evaluation("index: embed", 1.0, 0.0)[0] <= 0.25
    assert evaluation("match 900003", 0.5, 0.0)[1] == "Matching clip 900003 (3 of 4)"
    assert evaluation("done", 1.0, 0.0) == (1.0, "Done")


def test_run_with_progress_returns_and_reraises() -> None:
    def work(progress):
        progress("detect", 0.5)
        return 42

    assert run_with_progress(work, describe_match, poll_s=0.01) == 42
    with pytest.raises(ValueError, match="bad clip"):
        run_with_progress(lambda progress: (_ for _ in ()).throw(ValueError("bad clip")), describe_match, poll_s=0.01)


# --------------------------------------------------------------------------------------------- inspection
def test_compare_frame_with_the_truth_among_the_candidates(result: MatchResult) -> None:
    frame = result.frames[2]  # voted B, truth A
    infos = {"A": ProductInfo("Red skirt", "短裙", "/cat/A/cover.jpg")}
    row = compare_frame(frame, "A", infos)
    assert not row.correct
    assert row.chosen.product_id == "B" and row.chosen.similarity == pytest.approx(0.85)
    assert row.truth.product_id == "A" and row.truth.from_neighbours and row.truth.image_path == "/cat/A/0.jpg"
    assert row.query_box == (10.0, 60.0, 110.0, 150.0)  # the garment window that matched


def test_compare_frame_falls_back_to_the_cover_image(result: MatchResult) -> None:
    frame = result.frames[0]  # candidates A and B only
    row = compare_frame(frame, "C", {"C": ProductInfo("Green coat", "", "/cat/C/cover.jpg")})
    assert row.truth.image_path == "/cat/C/cover.jpg" and not row.truth.from_neighbours
    assert row.truth.similarity == pytest.approx(0.5) and row.truth.box is None


def test_compare_clip_and_errors_only(result: MatchResult) -> None:
    outcome = ClipOutcome("A", "A", 1, "A", result)
    clip = compare_clip(outcome, {})
    assert clip.correct and clip.n_frames_setting == 3
    assert [f.frame_index for f in visible_frames(clip, errors_only=True)] == [25]
    assert len(visible_frames(clip, errors_only=False)) == 3


# --------------------------------------------------------------------------------------------- charts and tables
def test_votes_heatmap_marks_each_frames_vote(result: MatchResult) -> None:
    fig = votes_heatmap(result, {"A": "Red skirt", "B": "Blue top", "C": "Green coat"}, max_products=2)
    heat = fig.data[0]
    assert list(heat.y) == ["Red skirt · A", "Blue top · B"]
    assert heat.text[0][0].startswith("★") and not heat.text[1][0].startswith("★")
    assert heat.text[1][2].startswith("★")
    assert math.isnan(heat.z[1][0]) is False


def _report(result: MatchResult) -> EvalReport:
    outcomes = [ClipOutcome("A", "A", 1, "A", result), ClipOutcome("B", "B", 2, "A", result),
                ClipOutcome("C", "Z", None, "A", result), ClipOutcome("D", None, None, "A", result)]
    return EvalReport("/data", {"frames": 3}, metrics(outcomes), tuple(outcomes))


def test_report_table_and_charts(result: MatchResult) -> None:
    report = _report(result)
    assert [truth_margin(o) for o in report.clips] == [1, -1, -2, None]
    table = clip_table(report, {"A": "Red skirt", "B": "Blue top"})
    assert list(table["result"]) == ["✓ correct", "✗ wrong", "✗ wrong", "○ absent"]
    # the clip's own product by name (the clip column shows its id); another product with its id
    assert list(table["top-1"]) == ["Red skirt", "Red skirt (A)", "Red skirt (A)", "Red skirt (A)"]
    assert list(table["true product"]) == ["Red skirt", "Blue top", "Z", "not in the catalogue"]
    assert list(table["rank of truth"]) == ["1", "2", "–", "–"]  # not "None" for an unranked or absent truth
    ranks = rank_chart(report)
    assert list(ranks.data[0].y) == [1, 2, 6] and list(ranks.layout.yaxis.ticktext)[-1] == "not ranked"
    assert list(margin_chart(report).data[0].y) == [1, -1, -2]


# --------------------------------------------------------------------------------------------- the why of a match
def test_a_frames_category_follows_its_vote_not_the_knn_label(result: MatchResult) -> None:
    """Frame 25 voted B, while its region's k-NN label is "短裙" (a skirt): the category shown is that of B's
    catalogue region it matched, else B's own category."""
    frame = result.frames[2]
    neighbours = tuple(Neighbour(replace(n.region, category="短袖上衣" if n.product_id == "B" else n.region.category),
                                 n.similarity) for n in frame.regions[0].neighbours)
    labelled = replace(frame, regions=(replace(frame.regions[0], neighbours=neighbours),))
    assert compare_frame(labelled, None, {}).category == "短袖上衣"
    infos = {"B": ProductInfo("Blue top", "长袖上衣", None)}
    assert compare_frame(frame, None, infos).category == "长袖上衣"  # the matched region has no category
    assert compare_frame(frame, None, {}).category == ""  # never the contradicting k-NN label
    none = replace(frame, voted_product=None)
    assert compare_frame(none, None, {}).category == "短裙"  # no vote: nothing to contradict


@pytest.mark.parametrize("name, pid, bare, label", [
    ("000134 · short-sleeve dress", "000134", "short-sleeve dress", "short-sleeve dress (000134)"),
    ("short-sleeve dress (000134)", "000134", "short-sleeve dress", "short-sleeve dress (000134)"),
    ("000134", "000134", "", "000134"),
    ("Red skirt", "A", "Red skirt", "Red skirt (A)"),
    ("A-line skirt", "A", "A-line skirt", "A-line skirt (A)"),
])
def test_product_names_show_the_id_once(name: str, pid: str, bare: str, label: str) -> None:
    assert bare_name(name, pid) == bare and product_label(name, pid) == label
    assert heat_label(name, pid).count(pid) == 1 or pid in bare


def test_sample_clip_names_show_the_id_once() -> None:
    names = {"000134": "000134 · short-sleeve dress", "A": "Red skirt"}
    assert clip_shows("000134", "000134", names) == "short-sleeve dress"
    assert clip_shows("v7", "000134", names) == "short-sleeve dress (000134)"
    assert clip_shows("A", "A", names) == "Red skirt" and clip_shows("v", None, names) == "a product not in the catalogue"


def test_heatmap_rows_have_room_for_their_names(result: MatchResult) -> None:
    names = {"A": "A very long product name that goes on and on", "B": "B · short", "C": "C"}
    fig = votes_heatmap(result, names, max_products=3)
    assert list(fig.data[0].y) == ["A very long product name that… · A", "short · B", "C"]
    assert fig.layout.margin.l >= 6 * len(fig.data[0].y[0]) and fig.layout.yaxis.automargin


# --------------------------------------------------------------------------------------------- verdict in reports
def test_report_says_how_it_ran_and_which_clips_are_uncertain(result: MatchResult) -> None:
    sure = replace(result, ranking=(replace(result.ranking[0], mean_similarity=0.9),) + result.ranking[1:])
    outcomes = (ClipOutcome("A", "A", 1, "A", result), ClipOutcome("B", "A", 1, "A", sure))
    settings = {"frames": 6, "windows": "hybrid", "domain_mean": "auto", "rank_by": "similarity"}
    report = EvalReport("/data", settings, metrics(list(outcomes)), outcomes, index={"model_key": "gem+centred/ab"})
    assert uncertain_clips(report) == ["A"]  # A's top two have the same evidence
    table = clip_table(report, {})
    assert list(table["sure"]) == ["uncertain", "confident"]
    assert list(table["evidence margin"]) == pytest.approx([0.0, 0.13])
    assert dict(run_settings(report.settings, report.index)) == {
        "windows": "the region exact, garment windows pooled (Standard)", "domain centring": "on",
        "ranked by": "evidence, then votes", "frames": "6 per clip"}
    plain = {**settings, "windows": "whole", "domain_mean": "none", "rank_by": "votes"}
    line = run_line(plain, {"model_key": "gem"})
    assert line == "windows: whole regions, no garment windows · domain centring: off · ranked by: votes · frames: 6 per clip"
    assert "domain centring: off" in run_line(plain)  # no index: read from the setting


def test_next_run_and_last_run_name_the_same_centring_for_auto() -> None:
    """Issue 32: Evaluate said "Next run: domain centring: auto" above "Run with · domain centring: off"."""
    from engine.config import Settings

    flat = Settings().flat()  # the default ensemble ships no livestream mean: auto is off
    assert flat["domain_mean"] == "auto"
    assert "domain centring: off" in run_line(flat)
    assert "domain centring: on" in run_line({**flat, "embedder": "efficientnet-lite0-gem"})  # a shipped mean


def test_a_product_card_labels_the_matched_region_with_its_own_category() -> None:
    """Issue 20: on a top's card, the trousers box that matched best was labelled "short-sleeve top" (the product's
    category); the card now draws the region as the catalogue annotated it."""
    from engine.types import Product, ProductScore, RegionRef
    from ui.views import card_region

    top = RegionRef("000103", "/c/0.jpg", (10.0, 10.0, 90.0, 60.0), "短袖上衣", 1)
    trousers = RegionRef("000103", "/c/0.jpg", (12.0, 55.0, 88.0, 150.0), "长裤", 0)
    product = Product("000103", "000103 · short-sleeve top", ("/c/0.jpg",), (top, trousers), "短袖上衣")
    score = ProductScore("000103", product.name, 1, 0.1, 0.29, 0.19, (), "/c/0.jpg", "/c/0.jpg",
                         (12.0, 55.0, 88.0, 150.0))
    assert card_region(score, product) == top  # issue 32: the card boxes the product itself, not the trousers
    alone = Product("000103", product.name, ("/c/0.jpg",), (trousers,), "短袖上衣")
    assert card_region(score, alone) == trousers  # a photo without the sold item: the matched box, labelled trousers
    detected = ProductScore("000103", product.name, 1, 0.1, 0.29, 0.19, (), "/c/0.jpg", "/c/0.jpg", (0, 0, 5, 5))
    assert card_region(detected, product).category == ""  # a detected region: no category claimed


def test_what_a_correction_stores_is_said_in_plain_grammar() -> None:
    """Issue 20: "These 1 frame(s) shows"."""
    from ui.correcting import frames_phrase

    assert frames_phrase([12], 10) == "frame #12"
    assert frames_phrase([1, 5], 10) == "2 frames (#1, #5)"
    assert frames_phrase(list(range(0, 400, 40)), 10) == "these 10 frames"
    assert frames_phrase(None, 10) == "the 10 sampled frames" and frames_phrase(None, 1) == "the 1 sampled frame"


def test_a_product_without_a_name_is_called_by_its_category_and_id_once() -> None:
    """Issue 32: Tianchi data has no names: "short skirt / 000117" with a blank category line on Match, and
    "000117 000117 · short skirt" on Inspect."""
    from ui.inspect_views import plain_name
    from ui.inspection import ProductInfo
    from ui.names import display_name, has_own_name

    assert display_name("000117 · short skirt", "000117", "短裙") == "short skirt · 000117"
    assert not has_own_name("000117 · short skirt", "000117", "短裙")
    assert display_name("Purple zigzag skirt", "900003", "短裙") == "Purple zigzag skirt"
    assert has_own_name("Purple zigzag skirt", "900003", "短裙")
    assert display_name("000117", "000117") == "000117"
    infos = {"000117": ProductInfo("000117 · short skirt", "短裙", None)}
    assert plain_name(infos, "000117", clip="000117") == "short skirt"  # beside its own clip's id: the id once
    assert plain_name(infos, "000117", clip="000134") == "short skirt · 000117"
