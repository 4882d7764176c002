"""The open-set check: each clip matched with its own product removed from the catalogue.

A verdict compares catalogue products with one another; this measures whether it can also say "none of these". The
clips whose product is in the catalogue are split in two halves (sorted by id, alternately); for each half, the
catalogue without those clips' products is indexed (the products are filtered in memory and the index built in a
temporary folder, its vectors from the embedding cache: no file of the dataset is copied) and those clips are
matched. Every answer there is wrong: a clip still called *confident* is a confident mistake.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from typing import Callable, Sequence

from engine.errors import EngineError
from engine.io.catalogue import Catalogue, ClipRef
from engine.pipeline.engine import Engine
from engine.types import ClipOutcome, OpenSetOutcome
from engine.verdict import Outcome

Progress = Callable[[str, float], None]


def halves(clips: list[ClipRef]) -> tuple[list[ClipRef], list[ClipRef]]:
    """The clips in two halves, alternately by id (each clip in exactly one)."""
    ordered = sorted(clips, key=lambda c: c.video_id)
    return ordered[0::2], ordered[1::2]


def without(catalogue: Catalogue, products: set[str]) -> Catalogue:
    """The catalogue with ``products`` removed (in memory; the files are not touched)."""
    return replace(catalogue, products={p: v for p, v in catalogue.products.items() if p not in products})


def open_set(engine: Engine, catalogue: Catalogue, progress: Progress | None = None) -> tuple[OpenSetOutcome, ...]:
    """Every clip whose product is in the catalogue, matched with that product removed (two halves, see the module's
    docstring). ``engine``'s models are shared; its own index is left as it is."""
    progress = progress or (lambda stage, f: None)
    clips = [c for c in catalogue.clips.values() if c.path and c.truth in catalogue.products]
    out: list[OpenSetOutcome] = []
    for h, half in enumerate(halves(clips)):
        if not half:
            continue
        removed = {str(c.truth) for c in half}
        part = Engine(engine.settings, detector=engine.detector, embedder=engine.embedder)
        with tempfile.TemporaryDirectory(prefix="livematch-open-set-") as tmp:
            part.build_index(without(catalogue, removed), tmp,
                             lambda stage, f, h=h: progress(f"open set {h + 1}/2, index: {stage}", f))
            for n, clip in enumerate(half):
                progress(f"open set {h + 1}/2, match {clip.video_id}", n / len(half))
                try:
                    result = part.match(clip.path)  # type: ignore[arg-type]
                except EngineError:
                    continue  # unreadable: the closed-set run reports it as skipped
                out.append(OpenSetOutcome(clip.video_id, str(clip.truth),
                                          result.top.product_id if result.top else None, result))
            part.index = None  # the temporary index goes with its folder
    return tuple(sorted(out, key=lambda o: o.video_id))


def outcome_counts(outcomes: Sequence[OpenSetOutcome | ClipOutcome]) -> dict[str, int]:
    """How many clips (open-set or not) got each outcome."""
    got = [o.result.verdict.outcome for o in outcomes]
    return {k.value: sum(g is k for g in got) for k in (Outcome.CONFIDENT, Outcome.UNCERTAIN, Outcome.ABSENT)}


def format_open_set(outcomes: tuple[OpenSetOutcome, ...]) -> str:
    """The open-set table and its counts, as the CLI prints them."""
    lines = ["open set (each clip matched with its own product removed from the catalogue; any answer is wrong):",
             f"{'clip':<10} {'removed':<10} {'top-1':<10} {'votes':>6} {'frames':>6} {'rel':>5} {'members':>7}"
             "  verdict"]
    for o in outcomes:
        v, top = o.result.verdict, o.result.top
        s = v.signals
        lines.append(f"{o.video_id:<10} {o.removed:<10} {str(o.top):<10} {s.vote_share:>6.2f} {s.frames_agree:>6.2f} "
                     f"{s.relative_margin:>5.2f} {f'{s.members_agree}/{s.members}':>7}  {v.level}"
                     + (" (WRONG: confident)" if v.confident else ""))
    c = outcome_counts(outcomes)
    lines.append(f"open set: {c['confident']} of {len(outcomes)} clips confident (each a confident mistake), "
                 f"{c['not in catalogue']} not in the catalogue, {c['uncertain']} uncertain")
    return "\n".join(lines)
