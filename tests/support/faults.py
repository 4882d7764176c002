"""Fault injection for the tests, kept out of the production code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def crashing_first_chunk(build: Callable, marker: str) -> Callable:
    """Wrap ``build`` (what a Ray worker calls once to get its embedding function, see engine.index.ray_build) so
    that the first chunk any worker embeds kills that worker's process, once: the worker that finds ``marker``
    absent creates it and exits. ``build``'s arguments pass through, so it can also replace
    ``engine.pipeline.engine.chunk_embedder``, which takes the settings.

    The returned function is a closure: Ray's cloudpickle sends it by value, so the workers need not import
    this module."""

    def start(*args):
        embed = build(*args)

        def embed_or_die(jobs, cache, problems):
            if not os.path.exists(marker):
                Path(marker).touch()
                os._exit(1)  # die mid-build, as a killed worker does
            return embed(jobs, cache, problems)

        return embed_or_die

    return start
