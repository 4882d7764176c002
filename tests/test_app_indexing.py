"""A catalogue indexed before the first upload (ui.indexing): one background build per index folder, which any page
and an upload made meanwhile wait on with the same bar and an estimate."""

from __future__ import annotations

import threading

import pytest

from ui import indexing


def test_a_second_start_waits_on_the_same_build_and_errors_reach_the_waiter() -> None:
    release, calls = threading.Event(), []

    def build(progress) -> None:
        calls.append(1)
        progress("embed", 0.5)
        release.wait(10)

    first = indexing.start("/idx/a", 40, build)
    second = indexing.start("/idx/a", 40, build)  # a page opened meanwhile, or an upload: the same build
    assert second is first and indexing.running("/idx/a") is first
    release.set()
    indexing.wait(first, "a")
    assert calls == [1] and indexing.running("/idx/a") is None

    def broken(progress) -> None:
        raise OSError("disk full")

    job = indexing.start("/idx/b", 3, broken)
    with pytest.raises(OSError, match="disk full"):
        indexing.wait(job, "b")
    assert indexing.running("/idx/b") is None  # a later page starts it again


def test_the_bar_says_how_many_photos_and_about_how_long() -> None:
    job = indexing.IndexJob("/idx/c", 24)
    guess = job.seconds_left()
    a, b = indexing.FIRST_GUESS_S
    assert guess == pytest.approx(a + b * 24, abs=1.0)  # before any progress: from the number of photos
    assert "Indexing the demo (24 catalogue photos) · Starting… · about" in job.text("the demo")
    job.report("embed", 0.5)
    job.started -= 10.0  # ten seconds in, about half done: about ten more
    assert 5.0 < job.seconds_left() < 15.0
