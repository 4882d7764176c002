"""The built-in demo dataset: a seeded synthetic catalogue and livestream clips (``generate_demo``)."""

from __future__ import annotations

from engine.io.demo.clips import FPS
from engine.io.demo.dataset import BUILTIN, DEMO_VERSION, builtin_demo, default_demo_dir, generate_demo
from engine.io.demo.sprites import DEMO_CATEGORIES, MAX_PRODUCTS

__all__ = ["BUILTIN", "DEMO_CATEGORIES", "DEMO_VERSION", "FPS", "MAX_PRODUCTS", "builtin_demo", "default_demo_dir",
           "generate_demo"]
