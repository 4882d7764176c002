import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_FRAMES, SHARED

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


@pytest.mark.parametrize("cmd", ["demo", "build-index", "match", "timeline", "timeline-eval", "evaluate", "models"])
def test_every_subcommand_has_help(cmd):
    out = run(cmd, "--help")
    assert out.returncode == 0 and "usage:" in out.stdout


@pytest.mark.slow
def test_bad_clip_gives_one_line_error_without_traceback(tmp_path, demo_dir):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    out = run("match", str(bad), "--catalogue", str(demo_dir), "--frames", "2")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "error: bad.mp4" in out.stderr


def test_missing_catalogue_is_a_clear_error(tmp_path):
    out = run("build-index", "--catalogue", str(tmp_path / "nope"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "not found" in out.stderr


@pytest.mark.slow
def test_evaluate_prints_metrics_and_writes_a_consistent_report(tmp_path, demo_dir):
    report = tmp_path / "r.json"
    out = run("evaluate", "--dataset", str(demo_dir), "--frames", str(FAST_FRAMES), "--report", str(report),
              "--fail-under", "1.0")
    assert out.returncode == 0, out.stderr
    assert "top-1 1.000" in out.stdout and "MRR" in out.stdout
    data = json.loads(report.read_text())
    assert data["metrics"]["clips"] == 3
    assert data["metrics"]["region_boxes"] == 12  # 3 clips x 4 annotated frames of the small demo
    assert data["metrics"]["region_top1"] >= 0.75 and "region top-1" in out.stdout
    for clip in data["clips"]:
        ranking = clip["result"]["ranking"]
        frame_votes = [f["voted_product"] for f in clip["result"]["frames"]]
        assert ranking[0]["votes"] == frame_votes.count(ranking[0]["product_id"])
        assert clip["top"] == clip["truth"] == ranking[0]["product_id"]


@pytest.mark.slow
@pytest.mark.shared
def test_imagenet_head_recognises_garments_in_real_shop_images():
    """The packaged weights are mapped right: real garment photos get garment classes."""
    from engine.models.check import classify_files

    garments = {"jersey, T-shirt, tee shirt", "cardigan", "miniskirt, mini", "jean, blue jean, denim", "gown",
                "trench coat", "suit, suit of clothes", "kimono", "overskirt", "sweatshirt", "poncho", "abaya",
                "lab coat, laboratory coat", "fur coat", "hoopskirt, crinoline", "sarong", "bulletproof vest",
                "stole", "wool, woolen, woollen", "velvet", "cloak", "maillot", "brassiere, bra, bandeau"}
    files = sorted(str(p) for p in (SHARED / "image").glob("*/0.jpg"))
    hits = sum(any(name in garments for name, _ in top) for _, top in classify_files(files))
    assert hits >= 0.8 * len(files)


@pytest.mark.slow
def test_compare_evaluates_each_setup_on_the_same_data(demo_dir, settings, monkeypatch):
    import engine.eval.evaluate as ev

    named = {"whole regions": {"windows": "whole"}, "garment windows": {"windows": "refined", "refine_top": 2}}
    rows = ev.compare(demo_dir, settings.with_(frames=2), named=named)
    assert [name for name, _, _ in rows] == ["whole regions", "garment windows"]
    assert rows[0][1].settings["windows"] == "whole" and rows[1][1].settings["refine_top"] == 2
    assert rows[1][1].metrics.top1 == 1.0
    table = ev.format_comparison(rows)
    assert "whole regions" in table and "region" in table.splitlines()[0]


@pytest.mark.slow
def test_match_a_clip_served_over_http(demo_dir, serve):
    """`python -m engine match http://.../clip.mp4 --catalogue DIR` against a local server; a dead URL is one line."""
    base = serve(demo_dir / "video")
    out = run("match", f"{base}/900002.mp4", "--catalogue", str(demo_dir), "--frames", str(FAST_FRAMES))
    assert out.returncode == 0, out.stderr
    assert "1. 900002" in out.stdout and "900002.mp4" in out.stdout
    dead = run("match", f"{base}/no-such-clip.mp4", "--catalogue", str(demo_dir))
    assert dead.returncode == 2 and "Traceback" not in dead.stderr and "cannot open the stream" in dead.stderr
