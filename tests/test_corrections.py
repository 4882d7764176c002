"""Corrections ("a person corrects, the system learns"): livestream examples stored beside the index, searched with
the catalogue at once, removable, kept by a rebuild, refused for another model; and the CLI round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import EngineError
from engine.index.corrections import SOURCE, CorrectedFrame, CorrectionStore
from engine.io.catalogue import load_catalogue
from engine.pipeline.correcting import ClipCorrection, correct_clip
from engine.pipeline.engine import Engine


@pytest.fixture()
def private_engine(engine: Engine, settings, demo_dir: Path, tmp_path: Path) -> Engine:
    """The shared models over a private index folder (corrections never reach the session's index)."""
    own = Engine(settings.with_(index_dir=str(tmp_path / "index")), detector=engine.detector, embedder=engine.embedder)
    own.build_index(load_catalogue(demo_dir), tmp_path / "index")
    return own


def _clip(demo_dir: Path) -> tuple[Path, str]:
    cat = load_catalogue(demo_dir)
    clip = next(c for c in cat.clips.values() if c.path and c.truth in cat.products)
    return Path(clip.path), str(clip.truth)  # type: ignore[arg-type]


def _wrong_product(engine: Engine, result, truth: str) -> str:
    """A product the clip does not show and that is not first."""
    return sorted(p for p in engine.index.products if p != truth and p != result.top.product_id)[0]  # type: ignore


@pytest.mark.slow
def test_a_correction_wins_the_clip_is_removable_and_survives_a_rebuild(private_engine: Engine, demo_dir: Path,
                                                                        tmp_path: Path) -> None:
    e = private_engine
    clip, truth = _clip(demo_dir)
    before = e.match(clip)
    other = _wrong_product(e, before, truth)
    assert before.top.product_id != other  # type: ignore[union-attr]

    stored = correct_clip(e, ClipCorrection(clip, other))
    assert len(stored) == len(before.frames) and all(c.product_id == other for c in stored)
    assert {c.frame_index for c in stored} == {f.frame_index for f in before.frames}
    after = e.match(clip)
    assert after.top.product_id == other  # type: ignore[union-attr]
    gained = next((p.mean_similarity for p in before.ranking if p.product_id == other), 0.0)
    assert after.top.mean_similarity > gained  # type: ignore[union-attr]
    sources = {nb.region.source for f in after.frames for r in f.regions for nb in r.neighbours}
    assert SOURCE in sources

    # a rebuild keeps them (they live beside builds/), and they still decide
    e.build_index(load_catalogue(demo_dir), tmp_path / "index")
    assert len(e.index.examples) > 0  # type: ignore[union-attr]
    assert e.match(clip).top.product_id == other  # type: ignore[union-attr]

    # removed: back to the ranking before
    removed = e.index.corrections.remove([c.correction_id for c in stored])  # type: ignore[union-attr]
    assert len(removed) == len(stored)
    again = e.match(clip)
    assert [p.product_id for p in again.ranking] == [p.product_id for p in before.ranking]
    assert [p.mean_similarity for p in again.ranking] == pytest.approx([p.mean_similarity for p in before.ranking])
    assert not any(SOURCE == nb.region.source for f in again.frames for r in f.regions for nb in r.neighbours)


def test_one_frame_is_stored_with_its_source_and_bad_input_is_refused(private_engine: Engine,
                                                                      demo_dir: Path) -> None:
    e = private_engine
    clip, truth = _clip(demo_dir)
    frame = e.match(clip).frames[1].frame_index
    [c] = correct_clip(e, ClipCorrection(clip, truth, [frame], regions="regions"))
    assert (c.product_id, c.clip, c.frame_index, c.regions) == (truth, clip.name, frame, "regions")
    assert len(c.clip_sha256) == 64 and c.added_at and len(c.boxes) >= 1
    assert e.index.corrections.image_path(c.correction_id).is_file()  # type: ignore[union-attr]
    with pytest.raises(EngineError, match="unknown product"):
        correct_clip(e, ClipCorrection(clip, "no-such-product"))
    with pytest.raises(EngineError, match="file not found"):
        correct_clip(e, ClipCorrection(clip.with_name("missing.mp4"), truth))
    with pytest.raises(EngineError, match="cannot be read"):
        correct_clip(e, ClipCorrection(clip, truth, [10_000]))
    with pytest.raises(EngineError, match="no livestream example"):
        e.index.corrections.remove(["c-nope"])  # type: ignore[union-attr]


@pytest.mark.slow
def test_corrections_made_with_another_model_are_refused_and_not_used(private_engine: Engine, demo_dir: Path,
                                                                     tmp_path: Path) -> None:
    e = private_engine
    clip, truth = _clip(demo_dir)
    store = CorrectionStore(tmp_path / "index" / "corrections")
    dim = e.index.dim  # type: ignore[union-attr]
    store.add(truth, "x.mp4", "", CorrectedFrame(0, 0.0, [(0, 0, 10, 10)], np.ones((1, dim), np.float32)),
              "another-model")
    with pytest.raises(EngineError, match="another-model"):
        correct_clip(e, ClipCorrection(clip, truth))
    examples = e.index.refresh_examples()  # type: ignore[union-attr]
    assert len(examples) == 0 and "another model" in examples.note
    store.remove(["all"])
    assert store.records() == []
    assert correct_clip(e, ClipCorrection(clip, truth, [e.match(clip).frames[0].frame_index]))


def test_store_skips_a_torn_line(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path)
    c = store.add("p1", "a.mp4", "", CorrectedFrame(3, 0.1, [(0, 0, 1, 1)], np.zeros((1, 4), np.float32)), "k")
    with open(store.log, "a") as f:
        f.write('{"add": {"id": "half')
    assert [r.correction_id for r in store.records()] == [c.correction_id]


def test_cli_correct_list_remove_round_trip(engine: Engine, settings, demo_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    from engine.cli import main

    clip, truth = _clip(demo_dir)
    common = ["--catalogue", str(demo_dir), "--index-dir", str(tmp_path / "cli-index")]
    assert main(["correct", str(clip), "--product", truth, "--frames", "0,2", "--sample", "4", *common]) == 0
    out = capsys.readouterr().out
    assert f"stored 2 livestream examples of {truth}" in out
    assert main(["correct", str(clip), "--product", truth, "--frames", "0,2", "--sample", "4", *common]) == 0
    assert f"nothing stored: these frames of {clip.name} are already livestream examples of {truth}" in \
        capsys.readouterr().out  # the same frames twice: a no-op that says so
    assert main(["corrections", *common]) == 0
    listing = capsys.readouterr().out
    ids = [line.split()[0] for line in listing.splitlines() if line.startswith("c")]
    assert len(ids) == 2 and clip.name in listing and truth in listing
    assert main(["corrections", "--remove", ids[0], *common]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert main(["corrections", *common]) == 0
    assert ids[0] not in capsys.readouterr().out

    assert main(["correct", str(clip), "--product", "nope", *common]) == 2
    assert "error: unknown product 'nope'" in capsys.readouterr().err
    assert main(["correct", str(clip), "--product", truth, "--frames", "9", "--sample", "4", *common]) == 2
    assert "error: --frames: position 9 is not one of the 4 sampled frames" in capsys.readouterr().err
    assert main(["corrections", "--remove", "c-nope", *common]) == 2
    assert "error: no livestream example" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_does_not_search_livestream_examples(private_engine: Engine, demo_dir: Path, settings,
                                                      tmp_path: Path) -> None:
    """Corrections may come from the evaluated clips themselves (Inspect): evaluate leaves them out."""
    from engine.eval.evaluate import evaluate

    e = private_engine
    clip, truth = _clip(demo_dir)
    other = _wrong_product(e, e.match(clip), truth)
    correct_clip(e, ClipCorrection(clip, other))
    assert e.match(clip).top.product_id == other  # type: ignore[union-attr]
    own = settings.with_(index_dir=str(tmp_path / "index"))
    report = evaluate(demo_dir, own, engine=Engine(own, detector=e.detector, embedder=e.embedder))
    outcome = next(o for o in report.clips if o.video_id == clip.stem)
    assert outcome.top != other and report.settings["use_examples"] is False


@pytest.mark.slow
def test_examples_follow_the_shop_filter(private_engine: Engine, demo_dir: Path) -> None:
    """With "only this shop", another shop's product cannot come back through its livestream examples."""
    e = private_engine
    clip, truth = _clip(demo_dir)
    correct_clip(e, ClipCorrection(clip, truth))
    assert e.match(clip).top.product_id == truth  # type: ignore[union-attr]
    elsewhere = Engine(e.settings.with_(shop="a shop that sells nothing"), e.detector, e.embedder, e.index)
    assert truth not in {p.product_id for p in elsewhere.match(clip).ranking}


def test_storing_the_same_frames_twice_adds_nothing(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "corrections")
    frames = [CorrectedFrame(i, i / 20, [(0.0, 0.0, 10.0, 10.0)], np.ones((1, 4), np.float32)) for i in (3, 7)]
    assert len(store.add_frames("p1", "a.mp4", "sha-a", frames, "key")) == 2
    log = store.log.read_bytes()
    assert store.add_frames("p1", "a.mp4", "sha-a", frames, "key") == []
    assert store.log.read_bytes() == log  # not even a line
    more = store.add_frames("p1", "a.mp4", "sha-a", frames + [CorrectedFrame(9, 0.45, [(0.0, 0.0, 5.0, 5.0)],
                                                                             np.ones((1, 4), np.float32))], "key")
    assert [c.frame_index for c in more] == [9]  # only the new frame
    assert len(store.add_frames("p2", "a.mp4", "sha-a", frames, "key")) == 2  # another product: a new correction
    assert len(store.records()) == 5


def test_an_example_counts_only_for_near_duplicate_queries() -> None:
    from engine.index.corrections import ExampleSet
    from engine.types import RegionRef

    example = np.float32([[1.0, 0.0]])
    refs = [RegionRef("p1", "x.jpg", (0.0, 0.0, 1.0, 1.0), "", 0, SOURCE)]
    examples = ExampleSet.from_raw([example], refs, lambda v: v, 2)
    near, far = np.float32([0.99, 0.141]), np.float32([0.8, 0.6])  # cosines 0.99 and 0.8
    queries = np.stack([near, far])
    assert examples.similarities(queries)["p1"][0][:, 0] == pytest.approx([0.99, 0.8])  # no bound
    bounded = examples.similarities(queries, 0.9)["p1"][0][:, 0]
    assert bounded[0] == pytest.approx(0.99) and bounded[1] == -np.inf
    assert examples.similarities(far[None], 0.9) == {}  # no query near it: the product is not even a candidate
