"""Coarse-to-fine timelines: the sampler on a scripted source (which product each second shows), weighted
segments, then a video joined from the demo clips, against a frame every 2 s, and the timeline bench's figures."""

from __future__ import annotations


import numpy as np
import pytest

from engine.config import DetectionSettings
from engine.eval.timeline import score_timeline
from engine.pipeline.coarse import CoarseToFine, dissimilarity, frame_label, same_box, thumbnail
from engine.pipeline.segments import FrameEvidence, frame_weights, segment
from engine.pipeline.timeline import TimelineParams, build_timeline
from engine.pipeline.votes import frame_vote
from engine.types import Detections, Frame

PRODUCTS = {"A": 40, "B": 120, "C": 200, "D": 250, "E": 251}  # each product's frames: a plain grey of this level


# ------------------------------------------------------------------------------------- a scripted source
class GridSource:
    """A frame every second; ``script`` gives the product each second shows (``"-"``: none)."""

    label = "scripted"

    def __init__(self, script: str) -> None:
        self.script, self.k, self.ended = script, 0, False

    def close(self) -> None:
        self.ended = True

    def next_frames(self, n: int) -> list[Frame]:
        out = []
        while len(out) < n and self.k < len(self.script):
            shown = self.script[self.k]
            level = PRODUCTS.get("B" if shown == "u" else shown.upper(), 0)
            image = np.full((48, 32, 3), level, np.uint8)
            if shown == "u":  # B, but only just ahead of A: the frame is unsure of it
                image[..., 1] = 255 - level
            elif shown.islower():  # the same product in another scene: a stripe down the left
                image[:, : 8 + self.k % 5] = 255 - level
            else:  # a stripe along the top that moves a little: frames are never identical
                image[: 8 + self.k % 5] = 255 - level
            out.append(Frame(self.k * 20, float(self.k), image))
            self.k += 1
        self.ended = self.k >= len(self.script)
        return out


class ScriptedEngine:
    """Stands for the Engine (and its detector) behind CoarseToFine: a frame's evidence is 0.9 for the product its
    grey level shows, 0.5 for the others (all 0.5 for a frame without one); it counts the frames it detects and
    matches."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.matched: list[float] = []
        self.detected = 0
        self.index = SimpleNamespace(products={p: {"name": p} for p in PRODUCTS})
        self.settings = SimpleNamespace(detection=DetectionSettings(stream_every=2.0, side_by_side=False))
        self.detector = self

    def examples(self):
        return None

    def detect(self, images, threshold):
        """One person, on the left of the frame, or on the right in the other scene (a stripe down the left)."""
        self.detected += len(images)
        boxes = [[16, 4, 30, 44] if im[-1, 0, 0] != im[-1, -1, 0] else [2, 4, 16, 44] for im in images]
        return [Detections(np.array([b], np.float32), np.array([0.9], np.float32), ("person",)) for b in boxes]

    def frame_evidence(self, frames, examples=None, dets=None):
        assert dets is not None and all(d is not None for d in dets)  # the sampler detects, or reuses, first
        votes = []
        for f in frames:
            level = int(f.image[-1, -1, 0])
            shown = next((p for p, v in PRODUCTS.items() if v == level), None)
            sims = {p: (0.9 if p == shown else 0.5) for p in PRODUCTS}
            if shown == "B" and f.image[-1, -1, 1] != level:  # unsure: B only just ahead of A
                sims.update(B=0.85, A=0.83)
            votes.append(frame_vote(f.index, f.time_s, [], sims, "detector"))
            self.matched.append(f.time_s)
        return votes


def _run(script: str, coarse_s: float = 8.0, windows: int = 4, **options) -> tuple[list, ScriptedEngine, CoarseToFine]:
    engine, source = ScriptedEngine(), GridSource(script)
    sampler = CoarseToFine(engine, source, coarse_s, 1.0, windows, none_below=0.72, **options)
    frames: list[FrameEvidence] = []
    while not source.ended:
        got, votes = sampler.next()
        assert [f.time_s for f in got] == [v.time_s for v in votes]
        frames += [FrameEvidence.of(v) for v in votes]
    return frames, engine, sampler


def test_coarse_to_fine_finds_each_change_to_a_second_with_fewer_frames():
    script = "A" * 45 + "B" * 37 + "C" * 50 + "A" * 28  # changes at 45, 82 and 132 s; 160 s in all
    frames, engine, sampler = _run(script)
    times = [f.time_s for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)  # in time order, each frame once
    assert sampler.grid_frames == len(script)
    assert len(frames) <= len(script) / 8 + 1 + 7 * 3 + 1  # the coarse samples, the 7 between at a change, the end
    assert len(frames) < len(script) / 2  # fewer than a frame every 2 s
    for change in (45, 82, 132):  # the last frame before the change and the first after it are both matched
        assert change - 1 in times and change in times
    segs = segment(frames, float(len(script)), 2.0, weighted=True)
    assert [s.product_id for s in segs] == ["A", "B", "C", "A"]
    assert [s.start_s for s in segs[1:]] == pytest.approx([44.5, 81.5, 131.5])


def test_halving_at_a_change_finds_it_to_a_second_with_four_frames_instead_of_seven():
    script = "A" * 45 + "B" * 37 + "C" * 50 + "A" * 28  # changes at 45, 82 and 132 s
    engine, source = ScriptedEngine(), GridSource(script)
    sampler = CoarseToFine(engine, source, 8.0, 1.0, 4, none_below=0.72, halve=True, locate=False)
    frames: list[FrameEvidence] = []
    while not source.ended:
        frames += [FrameEvidence.of(v) for v in sampler.next()[1]]
    times = [f.time_s for f in frames]
    assert times == sorted(times) and len(frames) <= len(script) / 8 + 1 + 4 * 3 + 1
    for change in (45, 82, 132):
        assert change - 1 in times and change in times
    assert len(frames) < len(_run(script, locate=False)[0]) - 6  # 3 frames fewer at each of the 3 changes


def test_a_change_at_a_cut_between_sure_frames_is_found_with_the_two_frames_either_side_of_the_cut():
    # each change a cut (the person's side of the frame changes too), none on a coarse sample
    script = "A" * 45 + "b" * 37 + "C" * 53 + "a" * 25
    frames, engine, sampler = _run(script)
    filled, _, unlocated = _run(script, locate=False)
    times = [f.time_s for f in frames]
    assert sampler.located == 3 and unlocated.located == 0
    assert len(frames) == len(filled) - 3 * 5  # 2 frames at each change instead of the 7 between its coarse samples
    for change in (45, 82, 135):
        assert change - 1 in times and change in times
    segs = segment(frames, float(len(script)), 2.0, weighted=True)
    assert [s.product_id for s in segs] == ["A", "B", "C", "A"]
    assert [s.start_s for s in segs[1:]] == pytest.approx([44.5, 81.5, 134.5])


def test_a_change_at_a_step_that_stands_out_is_found_there_though_the_frames_look_alike():
    base = np.tile(np.linspace(0, 200, 32, dtype=np.uint8)[None, :, None], (48, 1, 3))
    engine, source = ScriptedEngine(), GridSource("A" * 45 + "B" * 35)

    def still(n, _next=source.next_frames):  # the same picture throughout; the product a patch in the corner
        out = []
        for f in _next(n):
            image = base.copy()
            image[-20:, -12:] = PRODUCTS["A" if f.time_s < 45 else "B"]  # thumbnails 0.14 apart (alike: under 0.25)
            out.append(Frame(f.index, f.time_s, image))
        return out

    source.next_frames = still
    sampler = CoarseToFine(engine, source, 8.0, 1.0, 4, none_below=0.72)
    frames: list[FrameEvidence] = []
    while not source.ended:
        frames += [FrameEvidence.of(v) for v in sampler.next()[1]]
    assert sampler.located == 1 and [f.time_s for f in frames] == [0, 8, 16, 24, 32, 40, 44, 45, 48, 56, 64, 72, 79]
    assert [(s.product_id, s.start_s) for s in segment(frames, 80.0, 2.0, weighted=True)] == [("A", 0), ("B", 44.5)]


def test_a_change_without_one_cut_or_between_unsure_frames_has_every_frame_between_matched():
    # two cuts between the coarse samples 40 and 48 (A, A in another scene from 44, B from 46): every frame between
    frames, _, sampler = _run("A" * 44 + "a" * 2 + "B" * 34)
    assert sampler.located == 0 and set(range(40, 49)) <= {f.time_s for f in frames}
    assert [s.product_id for s in segment(frames, 80.0, 2.0, weighted=True)] == ["A", "B"]
    # one cut, but the frames after it are unsure of their product (B only just ahead of A): every frame between
    frames, _, sampler = _run("A" * 45 + "u" * 35)
    assert sampler.located == 0 and set(range(40, 49)) <= {f.time_s for f in frames}


def test_a_short_product_between_two_samples_of_the_same_one_is_looked_for_where_the_frames_differ():
    # C shows for 10 s between coarse samples 16 s apart that both show A: when those frames look alike nothing is
    # looked for between them (the documented limit); when A is in another scene after C, it is, and C is found.
    frames, _, _ = _run("A" * 17 + "C" * 10 + "A" * 21, coarse_s=16.0)
    assert "C" not in {frame_label(f, 0.72) for f in frames}
    frames, _, _ = _run("A" * 17 + "C" * 10 + "a" * 21, coarse_s=16.0)
    assert "C" in {frame_label(f, 0.72) for f in frames}


def test_skipping_a_coarse_sample_after_a_steady_sure_frame_still_finds_each_change():
    frames, _, sampler = _run("B" * 65, skip=True)  # sure, no cut: a read's first coarse sample after a sure anchor
    assert [f.time_s for f in frames] == [0, 8, 16, 24, 32, 48, 56, 64] and sampler.skipped == 1  # 40: after a read
    assert [f.time_s for f in _run("B" * 65)[0]] == list(range(0, 65, 8))  # off (the default): every 8 s
    script = "A" * 45 + "b" * 37 + "C" * 53 + "a" * 25  # a change, at a cut, inside each pair 16 s apart
    frames, _, sampler = _run(script, skip=True)
    times = [f.time_s for f in frames]
    for change in (45, 82, 135):
        assert change - 1 in times and change in times
    assert [s.product_id for s in segment(frames, float(len(script)), 2.0, weighted=True)] == ["A", "B", "C", "A"]
    frames, _, sampler = _run("u" * 41, skip=True)  # unsure: nothing skipped, a frame every 2 s
    assert sampler.skipped == 0 and [f.time_s for f in frames] == list(range(0, 41, 2))


def test_where_the_frames_are_unsure_of_their_product_frames_are_matched_every_2_s():
    frames, _, _ = _run("B" * 41)
    assert [f.time_s for f in frames] == [0, 8, 16, 24, 32, 40]
    frames, _, _ = _run("u" * 41)
    assert [f.time_s for f in frames] == list(range(0, 41, 2))
    assert {frame_label(f, 0.72) for f in frames} == {"B"}


def test_a_frame_that_barely_differs_reuses_its_detection():
    engine, source = ScriptedEngine(), GridSource("A" * 40)
    source.next_frames = lambda n, _next=source.next_frames: [  # every frame the same image
        Frame(f.index, f.time_s, np.full((48, 32, 3), 40, np.uint8)) for f in _next(n)]
    sampler = CoarseToFine(engine, source, 8.0, 1.0, 4, none_below=0.72)
    while not source.ended:
        sampler.next()
    assert sampler.matched == 6 and engine.detected == 1 and sampler.reused == 5


def test_frame_differences_and_boxes():
    a = np.zeros((48, 32, 3), np.uint8)
    a[:24] = 200
    b = (a.astype(np.int16) // 2 + 20).astype(np.uint8)  # the same picture, darker and flatter
    c = a[::-1].copy()  # another picture
    assert dissimilarity(thumbnail(a), thumbnail(b)) < 0.01 < 1.0 < dissimilarity(thumbnail(a), thumbnail(c))
    box = lambda *xy: Detections(np.array([xy], np.float32), np.array([0.9], np.float32), ("person",))  # noqa: E731
    assert same_box(box(0, 0, 10, 20), box(1, 0, 11, 20)) and not same_box(box(0, 0, 10, 20), box(10, 0, 20, 20))
    assert not same_box(Detections.whole(32, 48), Detections.whole(32, 48))


def test_weighted_segments_count_a_frame_by_the_video_it_stands_for():
    assert frame_weights([0, 2, 4, 6], 2.0).tolist() == [1, 1, 1, 1]
    assert frame_weights([0, 8, 9, 10], 2.0).tolist() == [4, 2.25, 0.5, 0.5]
    a, b = {"A": 0.9, "B": 0.5, "C": 0.4}, {"A": 0.5, "B": 0.9, "C": 0.4}
    frames = [FrameEvidence(i, t, r, max(r, key=r.get)) for i, (t, r) in enumerate(
        [(0, a), (8, a), (16, a), (17, b), (24, b), (32, b)])]
    weighted = segment(frames, 36.0, 2.0, switch_penalty=1.0, none_below=0.2, weighted=True)
    assert [(s.product_id, s.start_s) for s in weighted] == [("A", 0.0), ("B", 16.5)]


# ------------------------------------------------------------------------------------- a real video
@pytest.fixture(scope="module")
def long_parts(demo_dir, tmp_path_factory):
    """The small demo's clips A, B, C, A, each of its 40 frames written at 2 fps (20 s a part): 80 s."""
    from engine.eval.timeline_bench import join_frames
    from engine.io.catalogue import load_catalogue

    clips = load_catalogue(demo_dir).clips
    a, b, c = sorted(clips)[:3]
    out = tmp_path_factory.mktemp("coarse") / "abca.mp4"
    return out, join_frames([(clips[v].path, v) for v in (a, b, c, a)], out, fps=2.0)


def test_coarse_to_fine_matches_a_frame_every_2_s_with_fewer_frames(engine, long_parts):
    video, truth = long_parts
    coarse = build_timeline(engine, video, TimelineParams(every_s=2.0))
    even = build_timeline(engine, video, TimelineParams(every_s=2.0, coarse_s=0))
    assert coarse.params["coarse"] and not even.params["coarse"]
    fine, previous = score_timeline(coarse, truth), score_timeline(even, truth)
    assert fine.order == previous.order == tuple(p.product_id for p in truth)
    assert fine.max_boundary_error <= previous.max_boundary_error <= 1.0
    assert fine.accuracy >= previous.accuracy - 0.01
    assert len(coarse.frames) < len(even.frames) == 40


@pytest.mark.slow
def test_the_timeline_bench_writes_its_figures(settings, tmp_path):
    from engine.eval.timeline_bench import timeline_bench

    lines: list[str] = []
    result = timeline_bench(settings, tmp_path, lines.append, parts=3, part_frames=24, live_s=30.0)
    for key in ("s_per_video_hour", "previous_s_per_video_hour", "peak_rss_mb", "previous_peak_rss_mb",
                "boundary_error_s", "accuracy"):
        assert isinstance(result[key], float) and result[key] >= 0, key
    assert result["video_minutes"] == pytest.approx(0.6) and result["parts"] == 3  # 3 parts of 12 s
    assert result["previous_frames"] == 18 and result["frames"] > 0  # parts of 12 s: too short to save frames
    assert len(result["live_latency_s"]) == 2
    assert any("per video hour" in line for line in lines)
    assert result["peak_rss_in_bench_scope"] in ("coarse-to-fine run", "whole process (the peak could not be reset)")
    assert result["peak_rss_mb"] > 0 and result["peak_rss_in_bench_mb"] > 0  # a fresh process's, this one's
    assert result["params"]["region_rows"] == TimelineParams.region_rows


def test_a_failed_fresh_process_memory_run_is_not_measured_rather_than_zero(settings, tmp_path):
    """The bench's peak memory of a fresh `timeline` process: None (printed "not measured", with the child's last
    error line) when the run fails, never 0.0, which would pass any memory target."""
    from engine.eval.timeline_bench import fresh_process_peak_rss_mb

    lines: list[str] = []
    peak = fresh_process_peak_rss_mb(tmp_path / "missing.mp4", tmp_path, settings, tmp_path, out=lines.append)
    assert peak is None
    assert len(lines) == 1 and "failed (error: " in lines[0] and "not measured" in lines[0]  # its own message


def test_the_progress_line_gives_video_time_and_the_time_left():
    from ui.timeline import progress_text

    assert progress_text(90.0, 600.0, 30.4, 12) == ("Building the timeline · 0:01:30 of 0:10:00 of video · about "
                                                    "0:00:30 left · 12 frames matched")
    assert "left" not in progress_text(0.0, 600.0, None, 0) and "left" not in progress_text(0.0, 0.0, None, 0)


def test_a_running_timeline_keeps_settled_segments_and_ends_with_the_full_path(monkeypatch):
    """An hour of stream, a product every 100 s: while it runs, segments closed 5 minutes back are kept as found
    (each call segments the recent frames only); they are those of the full Viterbi path it ends with."""
    import engine.io.sampler as sampler
    from engine.pipeline.timeline import TimelineRun

    script = "".join("ABC"[k % 3] * 100 for k in range(36))
    monkeypatch.setattr(sampler, "open_sampler", lambda source, every, decode: (GridSource(script), 0.0))
    run = TimelineRun(ScriptedEngine(), "stream", TimelineParams(every_s=2.0, batch=1, coarse_s=6.0))
    running = None
    while not run.ended:
        run.step()
        if not run.ended:
            running = run.timeline()
    assert run._fixed_frames > len(run.frames) / 2  # most of the stream was settled along the way
    final = run.timeline()
    assert [s.product_id for s in final.segments] == ["ABC"[k % 3] for k in range(36)]
    closed = running.segments[:-1]
    assert [(s.product_id, s.start_s, s.end_s, s.first) for s in closed] == [
        (s.product_id, s.start_s, s.end_s, s.first) for s in final.segments[: len(closed)]]


# ------------------------------------------------------------------------------------- the timeline's regions
def _region_batches(regions: list[np.ndarray]) -> list[tuple[int, int]]:
    """(rows, height) of each batch ``TorchEmbedder.region_batches`` makes of the regions now (a stand-in embedder
    224x176 whose backbone runs 4 regions a batch, as OpenVINO's does)."""
    from types import SimpleNamespace

    from engine.models.embedders import TorchEmbedder, region_rows

    fake = SimpleNamespace(input_hw=(224, 176), preprocess=lambda crops, hw: hw)
    return [(len(chunk), h) for chunk, (h, _) in TorchEmbedder.region_batches(fake, regions, region_rows(4))]


TALL, WIDE = np.zeros((500, 100, 3), np.uint8), np.zeros((300, 280, 3), np.uint8)


def test_the_timelines_region_policy_holds_in_its_block_and_its_thread_only():
    import threading

    from engine.models.embedders import timeline_regions

    assert _region_batches([TALL] * 3 + [WIDE]) == [(1, 288), (3, 672)]  # by their aspect, 4 a batch: a clip's match
    seen = []
    with timeline_regions(rows=1):
        assert _region_batches([TALL] * 3 + [WIDE]) == [(1, 288), (1, 672), (1, 672), (1, 672)]
        with timeline_regions(480, 2):
            assert _region_batches([TALL] * 3 + [WIDE]) == [(2, 480), (2, 480)]
        other = threading.Thread(target=lambda: seen.append(_region_batches([TALL] * 2)))
        other.start()
        other.join()
    assert seen == [[(2, 672)]]  # another thread (another page's clip match) keeps the clip's policy
    assert _region_batches([TALL] * 3 + [WIDE]) == [(1, 288), (3, 672)]


class _PolicyEngine(ScriptedEngine):
    """The scripted engine, noting how a tall person region would be batched during each query."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, int]] = []

    def frame_evidence(self, frames, examples=None, dets=None):
        self.batches += _region_batches([TALL] * 2)
        return super().frame_evidence(frames, examples, dets)


def test_the_sampler_runs_its_queries_under_the_timelines_region_policy():
    engine, source = _PolicyEngine(), GridSource("A" * 20 + "B" * 20)
    sampler = CoarseToFine(engine, source, 8.0, 1.0, 4, none_below=0.72, region_height=384, region_rows=1)
    while not source.ended:
        sampler.next()
    assert engine.batches and set(engine.batches) == {(1, 384)}
    assert _region_batches([TALL] * 2) == [(2, 672)]  # as before once the sampler is done
    assert (TimelineParams().region_height, TimelineParams().region_rows) == (0, 1)


def test_a_timeline_lets_go_of_the_region_shapes_it_does_not_run_in():
    from types import SimpleNamespace

    from engine.pipeline.coarse import release_region_shapes

    class Backbone:
        region_batch = 4

        def __init__(self) -> None:
            self.shapes = {(4, 3, 288, 176), (4, 3, 480, 176), (1, 3, 480, 176), (1, 3, 576, 176), (8, 3, 224, 176)}

        def release(self, keep) -> None:
            self.shapes = {s for s in self.shapes if keep(s)}

    def embedder(**more):  # what engine.models.protocols.Embedder declares, and more
        return SimpleNamespace(name="m", dim=8, key="k", vectors_key="k", device="cpu", runtime="openvino",
                               precision="f32", input_hw=(224, 176), embed=lambda crops, batch_size=32: None, **more)

    members = [embedder(backbone=Backbone()) for _ in range(3)]
    release_region_shapes(embedder(members=members, weights=[1.0] * 3, vectors_graph=None), rows=1)
    assert all(m.backbone.shapes == {(1, 3, 480, 176), (1, 3, 576, 176), (8, 3, 224, 176)} for m in members)
    single = embedder(backbone=Backbone())
    release_region_shapes(single, height=480)  # rows 0: the backbone's own 4
    assert single.backbone.shapes == {(4, 3, 480, 176), (8, 3, 224, 176)}
    release_region_shapes(embedder(), 480)  # a torch embedder (no compiled shapes): nothing to do
    release_region_shapes(None)


def test_an_openvino_backbone_lets_go_of_the_shapes_it_is_told_to(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from engine.models import openvino_rt as ovrt
    from engine.models import runtime as rt

    monkeypatch.setattr(ovrt, "compiled_cache_dir", lambda: tmp_path / "openvino-compiled")
    name = "efficientnet-lite0-gem"
    path, key = rt.onnx_path(name)
    rt.ensure_onnx(name)
    backbone = ovrt.OpenVinoBackbone(path, rt.exported_config(name).dim, "f32", 2, key=key)
    x = np.random.default_rng(0).random((2, 3, 288, 176), np.float32)
    before = backbone.run(x, 4)
    backbone.run(np.zeros((2, 3, 384, 176), np.float32), 4)
    backbone.release(lambda shape: shape[2] == 384)
    assert backbone.run(np.zeros((1, 3, 384, 176), np.float32), 4).shape[0] == 1
    assert backbone.cache_events == ["compiled", "compiled"]  # 384 kept: nothing compiled or imported again
    np.testing.assert_allclose(backbone.run(x, 4), before, rtol=0, atol=1e-5)  # 288 let go: imported again
    assert backbone.cache_events == ["compiled", "compiled", "imported"]


def test_regions_run_one_a_batch_give_the_bands_of_a_clips_match(tmp_path, monkeypatch):
    """The timeline's regions (``timeline_regions(rows=1)``, each region in a compiled shape of one row) pool the same
    bands as a clip's match (4 regions a batch, the last padded), and compile shapes of one row only."""
    pytest.importorskip("openvino")
    from engine.models import openvino_rt as ovrt
    from engine.models import runtime as rt
    from engine.models.embedders import timeline_regions

    monkeypatch.setattr(ovrt, "compiled_cache_dir", lambda: tmp_path / "openvino-compiled")
    rng = np.random.default_rng(5)
    regions = [rng.integers(0, 255, (int(h), 200, 3), dtype=np.uint8) for h in (420, 430, 440, 300, 520)]
    bands = [(0.0, 0.5), (0.4, 1.0)]
    clip = rt.build_onnx_embedder("efficientnet-lite0-gem", runtime="openvino", precision="f32")
    as_a_clip = clip.embed_bands(regions, bands)
    timeline = rt.build_onnx_embedder("efficientnet-lite0-gem", runtime="openvino", precision="f32")
    with timeline_regions(rows=1):
        one_by_one = timeline.embed_bands(regions, bands)
    assert (as_a_clip * one_by_one).sum(-1).min() > 0.99999
    assert {s[0] for s in timeline.backbone._compiled} == {1}
