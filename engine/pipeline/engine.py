"""The Engine, a thin facade: clip -> frames -> regions -> windows -> embeddings -> search -> votes -> ranking.

The catalogue side is built the same way: product images -> regions -> embeddings -> index (pipeline.catalogue).
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, overload

from engine.config import Settings
from engine.errors import EngineError
from engine.geometry import as_box
from engine.index.cache import EmbeddingCache
from engine.index.corrections import NO_EXAMPLES, ExampleSet
from engine.index.incremental import ProductUpdate, UpdateSummary, update_index
from engine.index.protocol import IndexSpec
from engine.index.store import ProductIndex, check_reachable, write_index
from engine.io.catalogue import Catalogue
from engine.io.video import sample_frames
from engine.models import Detector, Embedder, get_detector, get_embedder, prepare_embedder
from engine.models.domain import DomainMean
from engine.models.ensemble import member_slices
from engine.models.domain import resolve as resolve_domain_mean
from engine.pipeline.catalogue import catalogue_regions, embed_chunk
from engine.pipeline.regions import detect_frames
from engine.pipeline.search import Query, search_query
from engine.pipeline.sources import ClipPath, ClipPaths, DecodedFrames, PreparedQuery
from engine.pipeline.votes import rank
from engine.pipeline.windows import QueryRegion, strategy_for
from engine.types import Detections, Frame, FrameVote, MatchResult

Progress = Callable[[str, float], None]
FramesSeen = Callable[[list[Frame]], None]  # ``match(..., on_frames=)``: given a clip's decoded frames
STAGES = ("decode", "detect", "embed", "search", "vote")  # the timed stages of a match, in order


def _no_progress(stage: str, fraction: float) -> None:
    pass


class Engine:
    """Matches clips against one product index. Thread-safe once constructed."""

    def __init__(self, settings: Settings | None = None, detector: Detector | None = None,
                 embedder: Embedder | None = None, index: ProductIndex | None = None) -> None:
        self.settings = settings or Settings()
        self._detector = detector
        self._embedder = embedder
        self.index = index
        self._domain: tuple[str, DomainMean | None] | None = None

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = get_detector(self.settings.models.detector)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            m = self.settings.models
            self._embedder = get_embedder(m.embedder, device=m.device, head=m.head, runtime=m.runtime,
                                          precision=m.precision,
                                          calibration=m.calibration or self.settings.paths.catalogue)
        return self._embedder

    def prepare(self) -> None:
        """Load the models now rather than inside the first match (what a fresh app's first match waits for): the
        detector in a thread (OpenCV reads its graph without the GIL, beside the embedder's loading), the
        embedder, then its backbones compiled for its batches. Before loading the
        index (``workspace.ready_engine(..., engine=this)``) or after it: the same engine."""
        with ThreadPoolExecutor(1) as pool:
            detector = pool.submit(lambda: self.detector)
            prepare_embedder(self.embedder, self.settings.models.batch_size)
            detector.result()

    @property
    def domain_mean(self) -> DomainMean | None:
        """The livestream-domain mean queries are centred on (None: no centring); see engine.models.domain."""
        key = self.embedder.key
        if self._domain is None or self._domain[0] != key:
            self._domain = (key, resolve_domain_mean(self.settings.models.domain_mean, key))
        return self._domain[1]

    @property
    def index_key(self) -> str:
        """The model key an index is built and loaded with: the embedder's vectors key (its precision included), plus
        the centring when it is on (an index built without it is refused, and rebuilt by the callers that rebuild)."""
        dm = self.domain_mean
        return self.embedder.vectors_key + (f"+centred/{dm.digest}" if dm is not None else "")

    # ----------------------------------------------------------------- catalogue side
    def build_index(self, catalogue: Catalogue, index_dir: str | Path, progress: Progress = _no_progress,
                    ray_address: str | None = None, ray_workers: int = 0) -> Path:
        """Embed the catalogue and publish a new index (atomically); load it into this engine.
        With ``ray_address`` ("local" starts a local Ray) the images are embedded by Ray workers."""
        t0 = time.perf_counter()
        check_reachable(self.settings.index)  # an unreachable server fails now, not after embedding
        cache = EmbeddingCache(self.settings.home / "embeddings")
        if ray_address:
            from engine.index.ray_build import ray_catalogue_regions

            vectors, items, problems = ray_catalogue_regions(partial(chunk_embedder, self.settings), catalogue,
                                                             ray_address, ray_workers, progress, cache=cache)
        else:
            vectors, items, problems = catalogue_regions(self, catalogue, progress, cache)
        progress("index", 0.0)
        products = product_entries(catalogue, {it.product_id for it in items})
        ix = self.settings.index
        build = write_index(index_dir, IndexSpec(
            vectors, items, products, self.index_key, ix.n_trees, ix.seed, backend=ix.index_backend,
            uri=ix.milvus_uri or None,
            query_mean=self.domain_mean.vector if self.domain_mean is not None else None,
            extra={"catalogue": catalogue.root, "embedder": self.embedder.name, "detector": self.settings.models.detector,
                   "build_seconds": round(time.perf_counter() - t0, 2), "cache": {"hits": cache.hits, "misses": cache.misses},
                   "problems": list(catalogue.problems) + problems,
                   "domain_mean": self.domain_mean.source if self.domain_mean is not None else None}))
        progress("index", 1.0)
        self.load_index(index_dir)
        return build

    def update_index(self, catalogue: Catalogue, index_dir: str | Path, changed: list[str],
                     removed: list[str] = (), progress: Progress = _no_progress) -> UpdateSummary:
        """Re-embed only the ``changed`` products (added or edited; from the cache where it can) and upsert their
        regions, delete the ``removed`` ones; the milvus backend only (see engine.index.incremental)."""
        part = replace(catalogue, products={p: catalogue.products[p] for p in changed if p in catalogue.products})
        vectors, items, _ = catalogue_regions(self, part, progress, EmbeddingCache(self.settings.home / "embeddings"))
        update = ProductUpdate(vectors, items, product_entries(part, {it.product_id for it in items}),
                               tuple(removed) + tuple(p for p in changed if p not in catalogue.products))
        summary = update_index(index_dir, update, self.index_key)
        self.load_index(index_dir)
        return summary

    def load_index(self, index_dir: str | Path) -> ProductIndex:
        self.index = ProductIndex.load(index_dir, self.index_key)
        return self.index

    def loaded_index(self) -> ProductIndex:
        """The index searched; a RuntimeError when none is loaded (a check that, unlike an assert, ``python -O``
        keeps)."""
        if self.index is None:
            raise RuntimeError("no index loaded: call build_index() or load_index() first")
        return self.index

    # ----------------------------------------------------------------- query side
    @overload
    def match(self, source: ClipPaths, progress: Progress = _no_progress, *, examples: ExampleSet | None = None,
              on_frames: FramesSeen | None = None) -> Iterator[tuple[str, MatchResult | EngineError]]: ...

    @overload
    def match(self, source: ClipPath | DecodedFrames | PreparedQuery | str | Path, progress: Progress = _no_progress,
              *, examples: ExampleSet | None = None, on_frames: FramesSeen | None = None) -> MatchResult: ...

    def match(self, source, progress=_no_progress, *, examples=None, on_frames=None):
        """Match a source (engine.pipeline.sources; a plain path or URL is one clip): detect, embed, search and vote
        over its frames, then rank the products. One clip, decoded frames or a prepared query give a MatchResult;
        many clips (ClipPaths) give an iterator of (clip, MatchResult or the EngineError of a clip that cannot be
        read), in order, the next clip decoding in a background thread. ``examples``: the livestream examples
        searched (default: those in force); ``on_frames``: called with each clip's decoded frames before they are
        matched, so a caller that draws them decodes nothing again."""
        if isinstance(source, (str, Path)):
            source = ClipPath(source)
        if isinstance(source, ClipPaths):
            return self._match_clips(source.paths, progress, examples, on_frames)
        if isinstance(source, PreparedQuery):
            votes = self._search(source.query, self._examples(examples))
            return self._result(source.clip_name, votes, {})
        if isinstance(source, DecodedFrames):
            frames, name, decode_s = list(source.frames), source.clip_name, None
        else:
            t0 = time.perf_counter()
            progress("decode", 0.0)
            frames = sample_frames(source.path, self.settings.detection.frames, progress)  # a URL: maybe downloaded
            name, decode_s = source.name, time.perf_counter() - t0
        if on_frames is not None:
            on_frames(frames)
        return self._match_frames(frames, name, progress, examples, decode_s)

    def frame_evidence(self, frames: list[Frame], examples: ExampleSet | None = None,
                       dets: list[Detections | None] | None = None) -> list[FrameVote]:
        """Each frame's vote and per-product evidence (its best similarity to every candidate product), exactly as
        ``match`` computes them, without the clip's ranking: what a timeline pools over a long video. ``dets``: per
        frame, regions already found (engine.pipeline.coarse reuses a like frame's), or None to detect them."""
        if not frames:
            return []
        return self._search(query_frames(self, frames, dets), self._examples(examples))

    def examples(self) -> ExampleSet:
        """The livestream examples searched with the catalogue (none when ``use_examples`` is off)."""
        index = self.loaded_index()
        return index.refresh_examples() if self.settings.search.use_examples else NO_EXAMPLES

    def _examples(self, given: ExampleSet | None) -> ExampleSet:
        return self.examples() if given is None else given

    def _match_frames(self, frames: list[Frame], clip_name: str, progress: Progress, examples: ExampleSet | None,
                      decode_s: float | None = None) -> MatchResult:
        self.loaded_index()  # no index: the RuntimeError before any work
        timings: dict[str, float] = {}
        stage = _Stopwatch(timings, progress)
        query = query_frames(self, frames, stage=stage)
        with stage("search"):
            votes = self._search(query, self._examples(examples))
        with stage("vote"):
            result = self._result(clip_name, votes, timings)
        progress("vote", 1.0)
        if decode_s is not None:  # a copy whose timings add the decoding and the total
            timings = {**result.timings, "decode": round(decode_s, 4)}
            timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 4)
            result = replace(result, timings=timings)
        return result

    def _match_clips(self, clips: tuple[str | Path, ...], progress: Progress, examples: ExampleSet | None,
                     on_frames: FramesSeen | None) -> Iterator[tuple[str, MatchResult | EngineError]]:
        def decode(path: str | Path) -> tuple[list[Frame] | EngineError, float]:
            t0 = time.perf_counter()
            try:
                return sample_frames(path, self.settings.detection.frames), time.perf_counter() - t0
            except EngineError as e:
                return e, time.perf_counter() - t0

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
            pending = [pool.submit(decode, clip) for clip in clips[:1]]
            for i, clip in enumerate(clips):
                progress("match", i / len(clips))
                frames, decode_s = pending.pop().result()
                pending += [pool.submit(decode, nxt) for nxt in clips[i + 1:i + 2]]
                if isinstance(frames, EngineError):
                    yield str(clip), frames
                    continue
                if on_frames is not None:
                    on_frames(frames)
                yield str(clip), self._match_frames(frames, ClipPath(clip).name, _no_progress, examples, decode_s)
        progress("match", 1.0)

    def _result(self, clip_name: str, votes: list[FrameVote], timings: dict[str, float]) -> MatchResult:
        ranking = rank(votes, self.loaded_index().products, self.settings.search.rank_by)
        return MatchResult(clip_name, tuple(votes), tuple(ranking), timings, self.settings.flat())

    def _search(self, query: Query, examples: ExampleSet) -> list[FrameVote]:
        """Every region of every frame searched through its windows; one vote per frame."""
        return search_query(self.loaded_index(), query, self.settings.search, self.settings.index.search_k,
                            member_slices(self.embedder), examples)


def query_frames(engine: Engine, frames: list[Frame], dets: list[Detections | None] | None = None,
                 stage: _Stopwatch | None = None) -> Query:
    """The frames' regions, their windows and the windows' vectors (detect and embed): what a match searches.
    ``dets``: per frame, regions already found (a frame that barely differs from one detected before reuses its
    regions: engine.pipeline.coarse), or None to detect them."""
    index = engine.loaded_index()
    stage = stage or _Stopwatch({}, _no_progress)
    with stage("detect"):
        known = list(dets) if dets is not None else [None] * len(frames)
        todo = [i for i, d in enumerate(known) if d is None]
        found = dict(zip(todo, detect_frames(engine.detector, [frames[i] for i in todo], engine.settings.detection)))
        given = [d if d is not None else found[i] for i, d in enumerate(known)]
    with stage("embed"):
        regions = [QueryRegion(f, as_box(b), d.source == "whole-frame")
                   for f, d in zip(frames, given) for b in d.boxes]
        plan = strategy_for(engine.settings, engine.embedder, index).plan(regions)
    return Query(frames, given, regions, plan)


def chunk_embedder(settings: Settings) -> Callable[[list, EmbeddingCache, list[str]], list[tuple]]:
    """The public embedding function for distributors of the catalogue build (engine.index.ray_build): an Engine
    of ``settings`` (its detector and embedder load on first use) bound to engine.pipeline.catalogue.embed_chunk,
    called as ``embed(jobs, cache, problems)``. A Ray worker calls ``partial(chunk_embedder, settings)()`` once."""
    return partial(embed_chunk, Engine(settings))


def product_entries(catalogue: Catalogue, indexed: set[str]) -> dict[str, dict]:
    """The sidecar's entry of each indexed product: name, category, shop and images."""
    return {pid: {"name": p.name, "category": p.category, "shop": p.shop, "images": list(p.images)}
            for pid, p in catalogue.products.items() if pid in indexed}


class _Stopwatch:
    """``with stage("embed"):`` reports progress at the start and records the stage's seconds."""

    def __init__(self, timings: dict[str, float], progress: Progress) -> None:
        self.timings, self.progress, self.name, self.t0 = timings, progress, "", 0.0

    def __call__(self, name: str) -> _Stopwatch:
        self.name = name
        return self

    def __enter__(self) -> None:
        self.progress(self.name, 0.0)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = round(time.perf_counter() - self.t0, 4)
