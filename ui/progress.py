"""A progress bar for long engine calls: the work runs in a helper thread, the script thread animates the bar.

Running the work in its own thread keeps Streamlit calls out of it: a cached function that updates a progress
bar would have those updates recorded and replayed on every cache hit. The engine reports (stage, fraction)
at stage boundaries only; within a stage the bar eases towards the stage's end so that it never looks stuck.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from engine.pipeline.engine import STAGES

T = TypeVar("T")
Progress = Callable[[str, float], None]
Describe = Callable[[str, float, float], tuple[float, str]]  # (stage, fraction, seconds in stage) -> (value, text)

_MATCH_SPANS = ((0.0, 0.06, "Decoding frames"), (0.06, 0.2, "Detecting people and products"),
                (0.2, 0.9, "Embedding garment regions"), (0.9, 0.97, "Searching the catalogue"),
                (0.97, 1.0, "Voting across frames"))
MATCH_STAGES: dict[str, tuple[float, float, str]] = {"": (0.0, 0.02, "Starting…"), **dict(zip(STAGES, _MATCH_SPANS))}
INDEX_STAGES: dict[str, tuple[float, float, str]] = {
    "": (0.0, 0.02, "Starting…"),
    "embed": (0.0, 0.92, "Embedding catalogue images"),
    "index": (0.92, 1.0, "Writing the index"),
}


class _Tracker:
    """The latest (stage, fraction) reported by the worker, and when its stage began."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stage, self.fraction, self.since = "", 0.0, time.monotonic()

    def __call__(self, stage: str, fraction: float) -> None:
        with self._lock:
            if stage != self.stage:
                self.stage, self.since = stage, time.monotonic()
            self.fraction = min(max(float(fraction), 0.0), 1.0)

    def snapshot(self) -> tuple[str, float, float]:
        with self._lock:
            return self.stage, self.fraction, time.monotonic() - self.since


def ease(fraction: float, seconds: float, tau: float = 4.0) -> float:
    """Progress within a stage: what the engine reported, or a slowly saturating guess if that is more."""
    return min(1.0, max(fraction, 0.95 * (1.0 - math.exp(-seconds / tau))))


def staged(stages: dict[str, tuple[float, float, str]]) -> Describe:
    """A Describe for a fixed sequence of named stages, each owning a slice of the bar."""

    def describe(stage: str, fraction: float, seconds: float) -> tuple[float, str]:
        lo, hi, text = stages.get(stage, stages[""])
        return lo + (hi - lo) * ease(fraction, seconds), text

    return describe


describe_match = staged(MATCH_STAGES)
describe_index_build = staged(INDEX_STAGES)


def describe_evaluation(n_clips: int) -> Describe:
    """Evaluation stages: 'index: embed', 'index: index', 'match <clip>' (fraction = clips done), 'done'."""
    index = staged(INDEX_STAGES)

    def describe(stage: str, fraction: float, seconds: float) -> tuple[float, str]:
        if stage.startswith("index: ") or stage == "":
            value, text = index(stage.removeprefix("index: "), fraction, seconds)
            return 0.25 * value, f"Indexing the catalogue · {text.lower()}"
        if stage.startswith("match "):
            n = max(1, n_clips)
            done = round(fraction * n)
            step = 1.0 / n
            value = 0.25 + 0.75 * (fraction + step * ease(0.0, seconds, tau=6.0))
            return min(value, 0.999), f"Matching clip {stage.removeprefix('match ')} ({min(done + 1, n)} of {n})"
        return 1.0, "Done"

    return describe


def run_with_progress(work: Callable[[Progress], T], describe: Describe, poll_s: float = 0.2,
                      quiet_s: float = 0.25) -> T:
    """Run ``work(progress)`` in a helper thread while a progress bar follows it; return its result or re-raise.

    The bar only appears when the work takes longer than ``quiet_s`` (a cached result shows no flash of a bar).
    """
    tracker = _Tracker()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = work(tracker)
        except BaseException as e:  # re-raised in the script thread
            outcome["error"] = e

    worker = threading.Thread(target=target, name="livematch-work", daemon=True)
    ctx = get_script_run_ctx()
    if ctx is not None:
        add_script_run_ctx(worker, ctx)
    worker.start()
    worker.join(quiet_s)
    bar = None
    try:
        while worker.is_alive():
            value, text = describe(*tracker.snapshot())
            if bar is None:
                bar = st.progress(min(max(value, 0.0), 1.0), text=text)
            else:
                bar.progress(min(max(value, 0.0), 1.0), text=text)
            worker.join(poll_s)
    finally:
        if bar is not None:
            bar.empty()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
