"""The Evaluate page: run an evaluation, see metrics, table and charts; the report feeds the Inspect page."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.apptest import assert_clean, open_app, page_text, plotly_figures, use_catalogue

from ui.text import md
from engine.eval.evaluate import load_report


@pytest.fixture()
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo_dir: Path) -> Path:
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path))
    monkeypatch.setenv("LIVEMATCH_CATALOGUE_ROOTS", str(tmp_path))  # the datasets these tests type in
    use_catalogue(monkeypatch, demo_dir)
    return tmp_path


@pytest.mark.slow
def test_run_an_evaluation_and_inspect_it(home: Path, demo_dir: Path) -> None:
    at = open_app("evaluate")
    assert at.text_input(key="evaluate.dataset").value == str(demo_dir)
    assert any("No report for this dataset yet" in i.value for i in at.info)

    at.button(key="evaluate.run").click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    saved = home / "reports" / f"{demo_dir.name}.json"
    assert saved.is_file() and md(str(saved)) in at.success[0].value  # the path shown as text
    report = load_report(saved)
    assert report.metrics.clips == 3

    metrics = {m.proto.label: m.value for m in at.metric}
    assert metrics["Top-1 accuracy"] == f"{report.metrics.top1:.0%}"
    assert metrics["MRR"] == f"{report.metrics.mrr:.3f}"
    assert metrics["Clips scored"] == "3"
    table = at.dataframe[0].value
    assert list(table["clip"]) == [c.video_id for c in report.clips]
    figures = plotly_figures(at)
    assert len(figures) == 3
    assert list(figures[0]["data"][0]["x"]) == [c.video_id for c in report.clips]  # rank per clip
    assert figures[1]["data"][0]["type"] == "bar"  # vote margins
    risk = figures[2]["data"][0]  # the verdict's risk-coverage curve: one point per clip, and the origin
    assert len(risk["x"]) == len(report.clips) + 1 and max(risk["x"]) == 1.0
    assert "Can the verdict be trusted?" in page_text(at)
    downloads = {d.proto.label: d for d in at.get("download_button")}  # the results, as CSV and JSON
    assert set(downloads) >= {"Clips (CSV)", "Full report (JSON)"}

    at.switch_page("pages/inspect.py").run()
    assert_clean(at)
    assert not at.info or "No evaluation report yet" not in at.info[0].value
    assert f"Correct · {sum(c.correct for c in report.clips)}" in page_text(at)


def test_a_folder_that_is_not_a_dataset_is_a_friendly_error(home: Path, tmp_path: Path) -> None:
    at = open_app("evaluate")
    at.text_input(key="evaluate.dataset").set_value(str(tmp_path / "nothing-here")).run()
    at.button(key="evaluate.run").click().run()
    assert_clean(at)
    assert at.error and "catalogue folder not found" in at.error[0].value


def test_a_dataset_without_clips_is_refused(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    (folder / "tee").mkdir(parents=True)
    (folder / "tee" / "0.jpg").write_bytes((Path(__file__).parent / "support" / "apptest.py").read_bytes())
    at = open_app("evaluate")
    at.text_input(key="evaluate.dataset").set_value(str(folder)).run()
    at.button(key="evaluate.run").click().run()
    assert_clean(at)
    assert at.error and "outside the folders" not in at.error[0].value


@pytest.mark.slow
def test_evaluate_and_inspect_with_a_trained_garment_head(home: Path, demo_dir: Path, engine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.io.catalogue import load_catalogue
    from engine.training.garments import GarmentConfig, train_garment_head

    _, info = train_garment_head(engine, load_catalogue(demo_dir), home / "garment.pt", GarmentConfig(epochs=150))
    monkeypatch.setenv("LIVEMATCH_GARMENT_MODEL", info["checkpoint"])
    at = open_app("evaluate")
    at.button(key="evaluate.run").click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    report = load_report(home / "reports" / f"{demo_dir.name}.json")
    assert report.settings["garment_model"] == info["checkpoint"] and report.metrics.clips == 3
    at.switch_page("pages/inspect.py").run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert "Correct ·" in page_text(at)


def test_the_learned_comparison_is_shown_when_one_was_run(home: Path, demo_dir: Path) -> None:
    from engine.config import Settings
    from engine.eval.crossval import LearnedComparison, LearnedRow
    from engine.types import Metrics
    from engine.workspace import learned_report_path

    rows = [LearnedRow(name, Metrics(3, t1, 1.0, mrr, 12, 0.9, v), 1.0, {}) for name, t1, mrr, v in
            (("baseline: person regions, 1280-d head", 0.333, 0.5, 0.3), ("all learned, k-NN categories", 1.0, 1.0, 0.9))]
    LearnedComparison(str(demo_dir), [["900001"], ["900002", "900003"]], rows,
                      {"images": 12, "boxes": 12, "ap50_garment_head": 0.71, "ap50_detector_regions": 0.2,
                       "ap50_all_windows": 0.1}, {"boxes": 12, "knn_accuracy": 1.0, "head_accuracy": 0.5,
                                                  "fused_accuracy": 0.75}).save(learned_report_path(Settings(), demo_dir))
    at = open_app("evaluate")
    assert_clean(at)
    text = page_text(at)
    assert "Learned parts · leave products out" in text
    assert "{900002, 900003}" in text and "learned head 0.710" in text
    table = at.dataframe[-1].value
    assert list(table["set-up"]) == [r.setup for r in rows]


def test_a_missing_video_is_one_note_and_products_are_named_once_in_the_table() -> None:
    """Issue 20: "14 notes" for 7 missing videos (the catalogue's note and the evaluation's); "000117 · short
    skirt" in the clip 000117's row repeated the id."""
    from engine.types import ClipOutcome, EvalReport, MatchResult, Metrics, ProductScore
    from ui.charts import clip_table, report_notes

    result = MatchResult("000117.mp4", (), (ProductScore("000117", "000117 · short skirt", 3, 1.0, 0.5, 0.4, (), None),
                                            ProductScore("000134", "000134 · short-sleeve dress", 0, 0.0, 0.3, 0.2, (),
                                                         None)), {}, {})
    report = EvalReport("/data/x", {}, Metrics(1, 0.0, 1.0, 0.5), (ClipOutcome("000117", "000134", 2,
                                                                                       "000117", result),),
                        skipped=("000006: video missing", "000044: video missing", "000099: unreadable video"),
                        problems=("video/000006.mp4: missing, clip skipped", "video/000044.mp4: missing, clip skipped",
                                  "image/000777: no images, product skipped"))
    notes = report_notes(report)
    assert notes == ["000099: unreadable video", "video/000006.mp4: missing, clip skipped",
                     "video/000044.mp4: missing, clip skipped", "image/000777: no images, product skipped"]
    names = {"000117": "000117 · short skirt", "000134": "000134 · short-sleeve dress"}
    row = clip_table(report, names).iloc[0]
    assert row["top-1"] == "short skirt"  # the clip's own product: the clip column shows its id
    assert row["true product"] == "short-sleeve dress (000134)"
