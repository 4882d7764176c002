"""The model registry: every embedder and detector registered where it is defined, built by ``create_embedder`` with
keyword arguments, its input size in its config (the keys that cached vectors and indexes depend on unchanged), and
its capabilities declared as Protocols that it satisfies."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ModelError
from engine.models import DETECTORS, create_embedder, embedder_names, get_embedder
from engine.models.ensemble import ensemble_name, members_of
from engine.models.heads import HeadEmbedder
from engine.models.protocols import (BandPooler, Embedder, Ensemble, Exported, Preparable, WithBase, base_of,
                                     pools_bands)
from engine.models.registry import embedder_entry, registered_embedders

ROOT = Path(__file__).resolve().parents[1]

# The keys cached vectors, indexes, heads and domain means were made under before the registry: they must not move.
KEYS = {
    "efficientnet-lite0-gem": "efficientnet-lite0-gem/in1k/288x224/p3/v1",
    "efficientnet-lite1-gem": "efficientnet-lite1-gem/in1k/288x224/p3/v1",
    "efficientnet-lite2-gem": "efficientnet-lite2-gem/in1k/288x224/p3/v1",
    "efficientnet-lite0-gem-224x176": "efficientnet-lite0-gem/in1k/224x176/p3/v1",
    "efficientnet-lite1-gem-224x176": "efficientnet-lite1-gem/in1k/224x176/p3/v1",
    "efficientnet-lite2-gem-224x176": "efficientnet-lite2-gem/in1k/224x176/p3/v1",
    "efficientnet-lite0": "efficientnet-lite0-head/in1k/224x224/v1",
    "resnet50": "resnet50/in1k/288x224/gem3/v1",
    "efficientnet-lite3-gem-224x176": "efficientnet-lite3-gem/in1k-tflite-int8/224x176/p3/v1",
}
ENSEMBLES = ["efficientnet-lite012-gem", "efficientnet-lite02-gem", "efficientnet-lite012-gem-224x176",
             "efficientnet-lite0123-gem-224x176"]


def test_every_name_is_registered_in_order_with_its_former_key():
    assert embedder_names() == list(KEYS) + ENSEMBLES
    for name, key in KEYS.items():
        config = embedder_entry(name).config
        assert (config.name, config.key) == (name, key)
    assert set(DETECTORS) == {"ssd-mobilenet-v2-coco", "ssd-mobilenet-v2-coco-openvino", "ssd300-vgg16"}


def test_the_input_size_lives_in_the_config():
    lite0 = embedder_entry("efficientnet-lite0-gem").config
    small = embedder_entry("efficientnet-lite0-gem", input_size=(224, 176)).config
    assert small == embedder_entry("efficientnet-lite0-gem-224x176").config and small.input_hw == (224, 176)
    assert lite0.at((288, 224)) == lite0 and lite0.name == "efficientnet-lite0-gem"
    other = embedder_entry("efficientnet-lite0-gem-256x192").config  # not registered: its family at that size
    assert (other.name, other.key, other.dim) == ("efficientnet-lite0-gem-256x192",
                                                  "efficientnet-lite0-gem/in1k/256x192/p3/v1", 320)
    assert ensemble_name("efficientnet-lite012-gem", (224, 176)) == "efficientnet-lite012-gem-224x176"
    assert [m for m, _ in members_of("efficientnet-lite0123-gem-224x176")][-1] == "efficientnet-lite3-gem-224x176"
    assert ensemble_name("efficientnet-lite02-gem", (224, 176)) == (
        "ensemble:efficientnet-lite0-gem-224x176*1+efficientnet-lite2-gem-224x176*1")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "no-such-embedder"}, "unknown embedder 'no-such-embedder'; choose one of efficientnet-lite0-gem"),
    ({"name": ""}, "non-empty string"),
    ({"name": "efficientnet-lite0-gem", "input_size": (8, 8)}, "input_size must be"),
    ({"name": "efficientnet-lite0-gem", "input_size": "224x176"}, "input_size must be"),
    ({"name": "efficientnet-lite0-gem", "runtime": "tensorrt"}, "unknown runtime 'tensorrt'"),
    ({"name": "efficientnet-lite0", "device": "cpu", "runtime": "onnxruntime"}, "no ONNX export"),
    ({"name": "ensemble:efficientnet-lite0-gem*x"}, "bad weight"),
])
def test_create_embedder_refuses_what_it_cannot_build_with_a_clear_message(kwargs, message):
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace("*", r"\*")):
        create_embedder(**kwargs)


def test_every_argument_but_the_name_is_a_keyword():
    with pytest.raises(TypeError, match="unexpected keyword argument 'size'"):
        create_embedder("efficientnet-lite0-gem", size=(224, 176))
    with pytest.raises(TypeError, match="positional argument"):
        create_embedder("efficientnet-lite0-gem", "cpu")
    with pytest.raises(TypeError, match="positional argument"):
        get_embedder("efficientnet-lite0-gem", "cpu")


def _check_declared(emb: Embedder, name: str) -> None:
    """The embedder is what its registration declares, and satisfies the Protocols of what it can do."""
    assert isinstance(emb, Embedder) and emb.name == name
    entry = embedder_entry(name)
    if entry is not None:
        assert (emb.key, emb.dim, emb.input_hw) == (entry.config.key, entry.config.dim, entry.config.input_hw)
        assert emb.runtime in entry.all_runtimes
    if isinstance(emb, BandPooler) and emb.supports_bands:
        assert pools_bands(emb)
        crops = [np.random.default_rng(0).integers(0, 255, (200, 120, 3), dtype=np.uint8)]
        bands = emb.embed_bands(crops, [(0.0, 0.5), (0.5, 1.0)])
        assert bands.shape == (1, 2, emb.dim)
        np.testing.assert_allclose(np.linalg.norm(bands, axis=-1), 1.0, atol=1e-4)
    if isinstance(emb, Exported):
        assert emb.runtime in ("onnxruntime", "openvino") and emb.backbone.precision == emb.precision
    if isinstance(emb, Ensemble):
        assert emb.dim == sum(m.dim for m in emb.members) and emb.supports_bands == all(map(pools_bands, emb.members))
        assert emb.vectors_graph is None or isinstance(emb.vectors_graph, Preparable)


@pytest.mark.parametrize("name", ["efficientnet-lite0-gem", "efficientnet-lite0"])
def test_a_torch_embedder_satisfies_what_it_declares(name):
    emb = create_embedder(name, device="cpu", runtime="torch")
    _check_declared(emb, name)
    assert pools_bands(emb) == (name == "efficientnet-lite0-gem")
    assert not isinstance(emb, (Exported, Ensemble, WithBase)) and base_of(emb) is emb


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in registered_embedders() if n != "resnet50"] + ENSEMBLES)
def test_every_registered_embedder_satisfies_what_it_declares(name):
    """resnet50 needs weights that are not packaged (LIVEMATCH_RESNET50_WEIGHTS)."""
    pytest.importorskip("openvino")
    emb = get_embedder(name, device="cpu")
    _check_declared(emb, name)
    runs_on = embedder_entry(name).all_runtimes if embedder_entry(name) else ()
    assert isinstance(emb, Ensemble) == (name in ENSEMBLES)
    assert isinstance(emb, Exported) == ("openvino" in runs_on)  # auto on the CPU: OpenVINO where it can


def test_a_projection_head_declares_its_base(tmp_path):
    from engine.models.heads import projection_head, save_checkpoint

    base = get_embedder("efficientnet-lite0-gem", device="cpu", runtime="torch")
    path = save_checkpoint(tmp_path / "head.pt", "projection-head",
                           {"weight": projection_head(base.dim, 16).weight.detach()}, {"base_key": base.key})
    head = HeadEmbedder(base, path)
    assert isinstance(head, WithBase) and base_of(head) is base and pools_bands(head)
    assert (head.dim, head.input_hw, head.runtime, head.precision) == (16, base.input_hw, "torch", "f32")
    crops = [np.random.default_rng(1).integers(0, 255, (120, 80, 3), dtype=np.uint8)]
    fmaps = head.feature_maps(crops)
    assert head.pool_boxes(fmaps[0], [(0.0, 0.0, 1.0, 0.5)]).shape == (1, 16)
    assert not hasattr(head, "preprocess")  # no attribute falls through to the base any more


def _calls(paths: list[Path], name: str) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_models_are_not_probed_and_import_their_engine_modules_at_the_top():
    models = sorted((ROOT / "engine" / "models").glob("*.py"))
    mine = models + [ROOT / "engine" / "pipeline" / "windows.py"]
    assert _calls(mine, "getattr") == []
    assert [str(p) for p in mine if "type: ignore" in p.read_text(encoding="utf-8")] == []
    local = []
    for path in models:
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local += [f"{path.name}:{n.lineno}" for n in ast.walk(fn) if isinstance(n, ast.ImportFrom)
                          and (n.module or "").split(".")[0] in ("engine", "ui")]
    assert local == []
    assert max(len(p.read_text(encoding="utf-8").splitlines()) for p in models) <= 350
