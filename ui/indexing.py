"""A catalogue indexed before the first upload: the build runs in a background thread, one per index folder for the
whole server, started as soon as a page opens a catalogue without an index; any page (and an upload made meanwhile)
waits on that same build with the same progress bar and an estimate of the time left.

The thread outlives the script run that started it: a rerun (an upload, a click) interrupts the page's waiting
loop, not the build, and the next run finds the build where it is. No Streamlit call is made from the thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import streamlit as st

from .progress import INDEX_STAGES, ease

Build = Callable[[Callable[[str, float], None]], object]
FIRST_GUESS_S = (8.0, 0.25)  # before any progress: seconds = a + b per photo (models loaded, photos embedded)
POLL_S = 0.25


@dataclass
class IndexJob:
    """One background build: where it stands, and how it ended."""

    key: str
    n_images: int
    started: float = field(default_factory=time.monotonic)
    stage: str = ""
    fraction: float = 0.0
    since: float = field(default_factory=time.monotonic)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def report(self, stage: str, fraction: float) -> None:
        """The engine's progress callback (called from the build's thread)."""
        if stage != self.stage:
            self.stage, self.since = stage, time.monotonic()
        self.fraction = min(max(float(fraction), 0.0), 1.0)

    def value(self) -> float:
        lo, hi, _ = INDEX_STAGES.get(self.stage, INDEX_STAGES[""])
        return lo + (hi - lo) * ease(self.fraction, time.monotonic() - self.since)

    def seconds_left(self) -> float:
        """An estimate: from the share done so far once there is some, else from the number of photos."""
        elapsed, done = time.monotonic() - self.started, self.value()
        if done >= 0.1:
            return max(elapsed / done * (1.0 - done), 1.0)
        a, b = FIRST_GUESS_S
        return max(a + b * self.n_images - elapsed, 1.0)

    def text(self, what: str) -> str:
        _, _, stage = INDEX_STAGES.get(self.stage, INDEX_STAGES[""])
        return (f"Indexing {what} ({self.n_images} catalogue photo{'s' if self.n_images != 1 else ''}) · {stage} · "
                f"about {self.seconds_left():.0f} s left. Matching starts as soon as it is done.")


_JOBS: dict[str, IndexJob] = {}
_LOCK = threading.Lock()


def start(key: str, n_images: int, build: Build) -> IndexJob:
    """The build of the index folder ``key``: the one already running, else a new one started now."""
    with _LOCK:
        job = _JOBS.get(key)
        if job is not None and not job.done.is_set():
            return job
        job = IndexJob(key, n_images)
        _JOBS[key] = job

    def run() -> None:
        try:
            build(job.report)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the job
            job.error = e
        finally:
            job.done.set()
            with _LOCK:
                if _JOBS.get(key) is job:
                    del _JOBS[key]

    threading.Thread(target=run, name="livematch-index", daemon=True).start()
    return job


def running(key: str) -> IndexJob | None:
    with _LOCK:
        job = _JOBS.get(key)
    return job if job is not None and not job.done.is_set() else None


def wait(job: IndexJob, what: str) -> None:
    """Show the build's progress bar until it is done; re-raise its error."""
    bar = None
    try:
        while not job.done.wait(POLL_S if bar is not None else 0.2):
            value = min(max(job.value(), 0.0), 1.0)
            if bar is None:
                bar = st.progress(value, text=job.text(what))
            else:
                bar.progress(value, text=job.text(what))
    finally:
        if bar is not None:
            bar.empty()
    if job.error is not None:
        raise job.error
