"""The product timeline: Viterbi segmentation on synthetic evidence, then whole videos joined from demo clips."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import VideoError
from engine.eval.timeline import join_clips, score_timeline
from engine.pipeline.timeline import (NO_PRODUCT, FrameEvidence, Timeline, TimelineParams, TimelineRun,
                                      build_timeline, segment, viterbi)
from tests.conftest import SHARED


# ------------------------------------------------------------------------------------------- Viterbi, synthetic
def _brute_force(scores: np.ndarray, penalty: float) -> float:
    n, k = scores.shape
    return max(sum(scores[t, p[t]] for t in range(n)) - penalty * sum(p[t] != p[t - 1] for t in range(1, n))
               for p in itertools.product(range(k), repeat=n))


def _value(scores, path, penalty) -> float:
    return float(sum(scores[t, s] for t, s in enumerate(path)) - penalty * np.count_nonzero(np.diff(path)))


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_finds_the_best_path_of_small_random_problems(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(6, 3))
    penalty = float(rng.uniform(0, 1.5))
    path = viterbi(scores, penalty)
    assert _value(scores, path, penalty) == pytest.approx(_brute_force(scores, penalty))


def test_viterbi_without_penalty_takes_each_frames_best_state():
    scores = np.random.default_rng(1).normal(size=(20, 4))
    assert viterbi(scores, 0.0).tolist() == scores.argmax(axis=1).tolist()


def test_viterbi_smooths_over_a_single_contrary_frame_but_follows_a_lasting_change():
    a, b = [0.5, 0.3], [0.3, 0.5]
    scores = np.array([a] * 5 + [b] + [a] * 5 + [b] * 5)  # one stray frame of b, then b for good
    path = viterbi(scores, switch_penalty=0.3)
    assert path.tolist() == [0] * 11 + [1] * 5
    assert viterbi(scores, switch_penalty=0.05).tolist() == [0] * 5 + [1] + [0] * 5 + [1] * 5  # a small penalty follows it


def test_viterbi_handles_empty_input():
    assert viterbi(np.zeros((0, 3)), 0.2).tolist() == []


def _evidence(rows: list[dict[str, float]], every: float = 2.0) -> list[FrameEvidence]:
    return [FrameEvidence(i * 10, i * every, r, max(r, key=r.get) if r else None) for i, r in enumerate(rows)]


def test_segments_of_synthetic_evidence_A_B_A_with_midpoint_boundaries_and_verdicts():
    a, b = {"A": 0.6, "B": 0.3, "C": 0.2}, {"A": 0.3, "B": 0.55, "C": 0.25}
    frames = _evidence([a] * 5 + [b] * 4 + [a] * 3)
    segs = segment(frames, end_s=24.0, every_s=2.0, switch_penalty=0.2, none_below=0.2, names={"A": "Coat"})
    assert [s.product_id for s in segs] == ["A", "B", "A"]
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 9.0), (9.0, 17.0), (17.0, 24.0)]
    assert segs[0].name == "Coat" and segs[0].runner_up == "B" and segs[0].frames == 5 and segs[0].votes == 5
    assert segs[0].mean_evidence == pytest.approx(0.6) and segs[0].margin == pytest.approx(0.3)
    assert {s.verdict for s in segs} == {"confident"}


def test_weak_evidence_becomes_no_product_and_a_close_runner_up_is_uncertain():
    weak = {"A": 0.1, "B": 0.08, "C": 0.05}
    close = {"A": 0.41, "B": 0.405, "C": 0.30, "D": 0.2, "E": 0.1}  # B close to A, both far above the field
    segs = segment(_evidence([weak] * 4 + [close] * 4), end_s=16.0, every_s=2.0, switch_penalty=0.1,
                   none_below=0.2)
    assert [s.product_id for s in segs] == [NO_PRODUCT, "A"]
    assert segs[0].verdict == "none" and not segs[0].is_product
    assert segs[1].verdict == "uncertain" and segs[1].margin == pytest.approx(0.005)


def test_a_product_missing_from_a_frames_kept_evidence_counts_as_its_lowest():
    frames = _evidence([{"A": 0.5, "B": 0.4}, {"A": 0.5}, {"A": 0.5, "B": 0.45}])
    segs = segment(frames, end_s=6.0, every_s=2.0, none_below=0.2)
    assert len(segs) == 1 and segs[0].product_id == "A"
    assert segs[0].runner_up == "B" and segs[0].mean_evidence == pytest.approx(0.5)


def test_a_timeline_round_trips_through_json_and_writes_csv():
    frames = _evidence([{"A": 0.6, "B": 0.2}] * 3)
    t = Timeline("v.mp4", 2.0, 6.0, segment(frames, 6.0, 2.0, none_below=0.2), tuple(frames))
    back = Timeline.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back == t
    rows = t.to_csv().splitlines()
    assert rows[0].startswith("start_s,end_s") and rows[1].startswith("0.00,6.00,0:00:00,0:00:06,A")


# ------------------------------------------------------------------------------------------- whole videos
EVERY = 0.5  # a frame every 0.5 s (coarse_s=0: evenly spaced frames; coarse to fine: tests/test_timeline_coarse.py)


@pytest.fixture(scope="module")
def joined(demo_dir: Path, tmp_path_factory) -> tuple[Path, tuple]:
    """The demo clips A, B, A (each 2 s) twice over each: A A B B A A, 4 s per part, 12 s in all."""
    from engine.io.catalogue import load_catalogue

    clips = load_catalogue(demo_dir).clips
    a, b = sorted(clips)[:2]
    out = tmp_path_factory.mktemp("joined") / "aba.mp4"
    parts = [(clips[v].path, v) for v in (a, a, b, b, a, a)]
    truth = join_clips(parts, out, size=(270, 480))
    return out, truth


def test_joined_A_B_A_comes_back_as_three_segments_in_order(engine, joined):
    video, truth = joined
    timeline = build_timeline(engine, video, TimelineParams(every_s=EVERY, coarse_s=0))
    a, b = truth[0].product_id, truth[2].product_id
    assert [s.product_id for s in timeline.segments] == [a, b, a]
    assert timeline.status == "complete" and timeline.end_s == pytest.approx(12.0)
    assert len(timeline.frames) == 24
    score = score_timeline(timeline, truth)
    assert score.in_order and len(score.boundary_errors) == 2
    assert score.max_boundary_error <= EVERY  # each boundary within one sampling interval
    assert score.accuracy >= 0.9
    assert "3 product segment(s), 2 product(s)" in timeline.message


@pytest.mark.slow
def test_sequential_decoding_gives_the_same_segments(engine, joined):
    video, _ = joined
    seek = build_timeline(engine, video, TimelineParams(every_s=EVERY, decode="seek", coarse_s=0))
    seq = build_timeline(engine, video, TimelineParams(every_s=EVERY, decode="sequential", coarse_s=0))
    assert [s.product_id for s in seq.segments] == [s.product_id for s in seek.segments]
    assert [f.time_s for f in seq.frames] == pytest.approx([f.time_s for f in seek.frames], abs=0.06)


def test_a_video_without_any_catalogue_product_gives_an_empty_timeline(engine, clip_path):
    video = clip_path(n_frames=40, size=(270, 480), fps=10.0)  # plain grey frames
    timeline = build_timeline(engine, video, TimelineParams(every_s=EVERY, coarse_s=0))
    assert timeline.status == "complete" and len(timeline.frames) == 8
    assert timeline.product_segments == ()
    assert all(s.verdict == "none" for s in timeline.segments)
    assert "no catalogue product was found" in timeline.message


@pytest.mark.slow
@pytest.mark.parametrize("decode, why", [("seek", "no frame could be read at"), ("sequential", "the video ended at")])
def test_a_stream_broken_mid_way_keeps_the_segments_found_so_far(engine, demo_dir, tmp_path, decode, why):
    from engine.io.catalogue import load_catalogue

    clips = load_catalogue(demo_dir).clips
    a, b = sorted(clips)[:2]
    video = tmp_path / "aab.avi"  # motion JPEG: an AVI cut short still reads up to the cut
    join_clips([(clips[v].path, v) for v in (a, a, b, b)], video, size=(270, 480))
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.7)])  # cut during B
    timeline = build_timeline(engine, video, TimelineParams(every_s=EVERY, decode=decode, coarse_s=0))
    assert timeline.status == "broken" and why in timeline.note, timeline.note
    assert [s.product_id for s in timeline.segments] == [a, b]
    assert 4.0 < timeline.end_s < 7.0
    assert "broke off" in timeline.message


def test_a_source_that_fails_mid_way_keeps_what_it_read(engine, joined, monkeypatch):
    run = TimelineRun(engine, joined[0], TimelineParams(every_s=EVERY, batch=4, coarse_s=0))
    run.step()
    run.step()

    def fail(n):
        raise VideoError("stream: connection reset")

    monkeypatch.setattr(run.reader, "next_frames", fail)
    run.step()
    t = run.timeline()
    assert t.status == "broken" and t.note == "stream: connection reset"
    assert len(t.frames) == 8 and t.segments and t.segments[0].product_id == joined[1][0].product_id


def test_stop_keeps_the_segments_so_far(engine, joined):
    run = TimelineRun(engine, joined[0], TimelineParams(every_s=EVERY, batch=4, coarse_s=0))
    run.step()
    run.stop()
    assert run.ended and run.step() == 0
    t = run.timeline()
    assert t.status == "stopped" and len(t.frames) == 4 and "stopped before the end" in t.message


def test_bad_input_is_a_one_line_error(engine, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(VideoError, match="bad.mp4"):
        TimelineRun(engine, bad)
    with pytest.raises(VideoError, match="positive"):
        TimelineRun(engine, bad, TimelineParams(every_s=0))


@pytest.mark.slow
def test_command_line_timeline_writes_json_and_csv(demo_dir, joined, tmp_path):
    from tests.test_cli import run

    out_json, out_csv = tmp_path / "t.json", tmp_path / "t.csv"
    out = run("timeline", str(joined[0]), "--catalogue", str(demo_dir), "--every", str(EVERY), "--coarse", "0",
              "--frames", "4",
              "--json", str(out_json), "--csv", str(out_csv))
    assert out.returncode == 0, out.stderr
    assert "3 product segment(s)" in out.stdout and "verdict" in out.stdout
    timeline = Timeline.from_dict(json.loads(out_json.read_text()))
    assert len(timeline.segments) == 3
    assert len(out_csv.read_text().splitlines()) == 4


@pytest.mark.shared
def test_joined_dev_clips_117_134_117_come_back_in_order(tmp_path):
    """The issue's check on real clips: segments 000117, 000134, 000117, each boundary within 4 s."""
    from engine.config import Settings
    from engine.io.catalogue import load_catalogue
    from engine.workspace import ready_engine

    dev = SHARED.parent / "watchlive-dev"
    # the shared marker already skips a checkout without ../shared; with it, a missing dev clip is a broken setup
    assert (dev / "video" / "000134.mp4").is_file(), f"{dev} lacks its clips"
    catalogue = load_catalogue(dev)
    truth = join_clips([(catalogue.clips[v].path, v) for v in ("000117", "000134", "000117")],
                       tmp_path / "joined.mp4")
    engine = ready_engine(Settings.from_env(catalogue=str(dev)), catalogue)
    timeline = build_timeline(engine, tmp_path / "joined.mp4")
    score = score_timeline(timeline, truth)
    assert score.order == ("000117", "000134", "000117")
    assert score.max_boundary_error <= 4.0


@pytest.mark.slow
def test_command_line_live_timeline_of_a_served_video_prints_segments_as_they_close(demo_dir, joined, serve):
    from tests.test_cli import run

    url = f"{serve(joined[0].parent)}/{joined[0].name}"
    out = run("timeline", url, "--live", "--catalogue", str(demo_dir), "--every", str(EVERY), "--coarse", "0",
              "--frames", "4")
    assert out.returncode == 0, out.stderr
    a, b = joined[1][0].product_id, joined[1][2].product_id
    closed = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("0:00:")]
    assert closed == [a, b]  # the last segment closes with the stream: it is in the table only
    assert "3 product segment(s)" in out.stdout


@pytest.mark.slow
def test_the_long_video_benchmark_reports_speed_memory_and_segments(settings, tmp_path):
    from engine.eval.timeline import long_video_bench

    lines: list[str] = []
    result = long_video_bench(settings, 0.01, tmp_path, lines.append)  # one pass of the six demo clips: 60 s
    assert result["hours"] == pytest.approx(60 / 3600, abs=1e-3) and result["frames"] == 30
    assert result["video_s_per_wall_s"] > 0 and result["peak_rss_mb"] > 0
    assert len(result["rss_mb_by_tenth"]) >= 10
    assert result["segments"] == result["true_parts"] == 6 and result["max_boundary_error_s"] <= 2.0
    assert result["decode_first_10_min"]["seek_frames"] == result["decode_first_10_min"]["sequential_frames"] == 30
    assert any("video-s per wall-s" in line for line in lines)
