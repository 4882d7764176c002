"""One ``Engine.match(source)``: a clip, a folder of clips, decoded frames and a prepared query give the same votes and
ranking for the same frames; and every index backend is an ``IndexBackend`` (engine.index.protocol)."""

from __future__ import annotations

import importlib.util
import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.errors import EngineError
from engine.index.backends import BACKENDS, AnnoyBackend, FaissBackend
from engine.index.milvus import MilvusBackend
from engine.index.protocol import FilteredBackend, IndexBackend, IndexSpec
from engine.index.store import ProductIndex, write_index
from engine.pipeline.engine import Engine, query_frames
from engine.pipeline.sources import ClipPath, ClipPaths, DecodedFrames, PreparedQuery, source_of
from engine.types import RegionRef


def _ranking(result) -> list[tuple[str, float, int]]:
    return [(p.product_id, p.mean_similarity, p.votes) for p in result.ranking]


def _votes(result) -> list[tuple[int, str | None, float]]:
    return [(f.frame_index, f.voted_product, f.vote_similarity) for f in result.frames]


def test_source_of_a_file_a_url_and_a_folder(tmp_path: Path, clip_path) -> None:
    a, b = clip_path(name="b.mp4"), clip_path(name="a.mov")
    (tmp_path / "notes.txt").write_text("not a clip")
    assert source_of(a) == ClipPath(a) and source_of(str(a)) == ClipPath(a)
    url = "https://example.com/live/clip.mp4"
    assert source_of(url) == ClipPath(url) and source_of(url).name == "clip.mp4"
    assert source_of(tmp_path) == ClipPaths((b, a))  # sorted, video files only
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EngineError, match="no video files"):
        source_of(empty)
    with pytest.raises(EngineError, match="not a folder"):
        ClipPaths.folder(a)


def test_engine_has_one_public_way_to_match() -> None:
    """``match`` and the timeline's ``frame_evidence`` are the only public methods that match or gather evidence."""
    public = {n for n, _ in inspect.getmembers(Engine) if not n.startswith("_")}
    assert {"match", "frame_evidence"} <= public
    assert not public & {"match_clip", "match_many", "match_frames", "match_query", "query", "detect", "correct"}


def test_a_clip_its_frames_and_its_prepared_query_match_alike(engine, demo_dir: Path) -> None:
    clip = sorted((demo_dir / "video").glob("*.mp4"))[0]
    frames: list = []
    from_clip = engine.match(ClipPath(clip), on_frames=frames.extend)
    assert from_clip.clip == clip.name and len(frames) == len(from_clip.frames) > 0
    assert [f.index for f in frames] == [f.frame_index for f in from_clip.frames]
    assert {"decode", "total"} <= set(from_clip.timings)
    from_frames = engine.match(DecodedFrames(tuple(frames), clip.name))
    assert "decode" not in from_frames.timings
    prepared = engine.match(PreparedQuery(query_frames(engine, frames), clip.name))
    for other in (from_frames, prepared, engine.match(clip)):  # a plain path is one clip
        assert other.clip == clip.name
        assert _votes(other) == _votes(from_clip) and _ranking(other) == _ranking(from_clip)
    assert [f.voted_product for f in engine.frame_evidence(frames)] == [f.voted_product for f in from_clip.frames]


def test_a_folder_of_clips_matches_each_in_order_and_reports_a_broken_one(engine, demo_dir: Path,
                                                                         tmp_path: Path) -> None:
    clips = sorted((demo_dir / "video").glob("*.mp4"))[:2]
    for c in clips:
        shutil.copy(c, tmp_path / c.name)
    (tmp_path / "zz-broken.mp4").write_bytes(b"not a video")
    seen: list[int] = []
    got = list(engine.match(source_of(tmp_path), on_frames=lambda frames: seen.append(len(frames))))
    assert [Path(c).name for c, _ in got] == [c.name for c in clips] + ["zz-broken.mp4"]
    assert isinstance(got[-1][1], EngineError) and len(seen) == 2
    for (_, result), clip in zip(got, clips):
        assert _ranking(result) == _ranking(engine.match(clip))


def _tiny(tmp_path: Path, backend: str) -> ProductIndex:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(12, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)  # as embedders give them
    items = [RegionRef(f"p{i % 3}", f"{i}.jpg", (0.0, 0.0, 1.0, 1.0)) for i in range(12)]
    write_index(tmp_path / backend, IndexSpec(v, items, {f"p{k}": {} for k in range(3)}, "m", n_trees=3,
                                              backend=backend))
    return ProductIndex.load(tmp_path / backend, "m")


def test_every_backend_is_an_index_backend(tmp_path: Path) -> None:
    """Each registered backend declares the protocol; a loaded Annoy (and FAISS, when installed) index is one, and
    only Milvus declares that it filters by shop itself."""
    assert set(BACKENDS) == {"annoy", "faiss", "milvus"}
    for cls in BACKENDS.values():
        assert isinstance(cls, IndexBackend), cls  # the class's methods and names, checked structurally
    assert isinstance(MilvusBackend, FilteredBackend) and not isinstance(AnnoyBackend, FilteredBackend)
    installed = ["annoy"] + (["faiss"] if importlib.util.find_spec("faiss") else [])
    for name in installed:
        index = _tiny(tmp_path, name)
        loaded = index._ann  # noqa: SLF001 - the backend a ProductIndex searches through
        assert isinstance(loaded, IndexBackend) and not isinstance(loaded, FilteredBackend)
        assert type(loaded) is {"annoy": AnnoyBackend, "faiss": FaissBackend}[name]
        ids, sims = loaded.search(np.asarray(index.vectors[0]), 3)
        assert ids[0] == 0 and sims[0] == pytest.approx(1.0, abs=1e-4)
        assert loaded.moved(index.build / loaded.filename, "http://elsewhere:19530") == ""  # a local file serves
