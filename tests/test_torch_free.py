"""The exported embedders' torch-free path (engine.models.pooling): a default match or timeline with its exports cached
never imports torch (a fresh process, on the generated demo), and the numpy pooling gives the torch pooling's vectors
(the default ensemble's plain vectors and its hybrid windows' garment bands) to float32 rounding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engine.geometry import band_fractions
from engine.models.pooling import gem_numpy, l2_normalised, pool_boxes_numpy, torch_may_see_gpu

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "efficientnet-lite012-gem-224x176"
BOXES = [(0.0, 0.0, 1.0, 1.0), (0.1, 0.2, 0.9, 0.5), (0.0, 0.6, 1.0, 1.0), (0.5, 0.5, 0.51, 0.51), (0, 0.95, 1, 1)]
UNWANTED = ("torch", "torchvision", "timm", "onnx", "onnxruntime")  # a warm default run loads none
# the child runs the command, then prints which of them it loaded, as JSON
PROBE = ("import json, sys\nfrom engine.cli import main\nrc = main(sys.argv[1:])\n"
         f"print('LOADED', json.dumps(sorted(m for m in {UNWANTED!r} if m in sys.modules)))\nsys.exit(rc)")


def _loaded(*args: str) -> list[str]:
    """The torch modules a fresh ``python -m engine ARGS`` process had loaded when it ended (it must succeed)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    line = [v for v in done.stdout.splitlines() if v.startswith("LOADED ")][-1]
    return json.loads(line.split(" ", 1)[1])


def _regions(n: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Person-like crops of several aspects: smooth colour fields with a stripe, and noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(150, 600)), int(rng.integers(60, 250))
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        if i % 2 == 0:
            img[:] = rng.integers(0, 255, 3, dtype=np.uint8)
            img[h // 3: h // 2] = rng.integers(0, 255, 3, dtype=np.uint8)
        out.append(img)
    return out


def _torch_pool_boxes(fmap: np.ndarray, boxes) -> np.ndarray:
    """The torch embedder's own box pooling (EfficientNetLiteGeM.pool_boxes: GeM p=3 in torch, then
    torch.nn.functional.normalize) on a numpy feature map."""
    import torch

    from engine.models.embedders import EfficientNetLiteGeM, gem

    pooler = SimpleNamespace(_torch=torch, dim=fmap.shape[0], _pool=lambda f: gem(f, 3.0))
    return EfficientNetLiteGeM.pool_boxes(pooler, torch.from_numpy(np.ascontiguousarray(fmap)), boxes)


def test_numpy_pooling_is_torchs_to_float_rounding():
    """GeM, box and band pooling and normalisation of random feature maps (maps of the default members' sizes,
    with the negative values a backbone gives), numpy against the torch embedder's code."""
    import torch

    from engine.models.embedders import gem

    rng = np.random.default_rng(1)
    bands = list(band_fractions())
    for channels, rows, cols in ((320, 7, 6), (352, 12, 7), (384, 1, 1)):
        fmaps = (rng.standard_normal((3, channels, rows, cols)) * 2).astype(np.float32)
        ref = torch.nn.functional.normalize(gem(torch.from_numpy(fmaps), 3.0), dim=1).numpy()
        assert np.abs(l2_normalised(gem_numpy(fmaps, 3.0)) - ref).max() < 1e-6
        for fmap in fmaps:
            boxes = BOXES + [(0.0, a, 1.0, b) for a, b in bands]
            ours, theirs = pool_boxes_numpy(fmap, boxes, 3.0), _torch_pool_boxes(fmap, boxes)
            assert ours.shape == theirs.shape == (len(boxes), channels) and ours.dtype == np.float32
            assert np.abs(ours - theirs).max() < 1e-6
    assert pool_boxes_numpy(fmaps[0], [], 3.0).shape == (0, fmaps.shape[1])


@pytest.mark.slow
def test_the_default_ensembles_vectors_and_bands_equal_the_torch_pooling():
    """The default ensemble on OpenVINO f32: its plain vectors (the fused graph, and each member's numpy path) and its
    hybrid windows' garment bands (numpy pooling of its feature maps) against torch's pooling of the same feature
    maps, weighted and joined as the ensemble does: largest difference under 1e-5."""
    import torch

    from engine.models import get_embedder
    from engine.models.embedders import gem

    ens = get_embedder(DEFAULT, device="cpu", runtime="openvino", precision="f32")
    assert ens.runtime == "openvino" and ens.vectors_graph is not None and len(ens.members) == 3
    regions = _regions()
    batch = ens.preprocess(regions)
    fmaps = [m.backbone.run(batch) for m in ens.members]
    scales = [w ** 0.5 for w in ens.weights]
    ref = np.concatenate([torch.nn.functional.normalize(gem(torch.from_numpy(f), 3.0), dim=1).numpy() * s
                          for f, s in zip(fmaps, scales)], axis=1)
    members = np.concatenate([m.embed_preprocessed(batch) * s for m, s in zip(ens.members, scales)], axis=1)
    assert np.abs(members - ref).max() < 1e-5
    assert np.abs(ens.embed(regions) - ref).max() < 1e-5  # the fused graph (the default's plain vectors)

    bands = list(band_fractions())
    ours = ens.embed_bands(regions, bands)
    maps = ens.feature_maps(regions)
    for i, per_member in enumerate(maps):
        boxes = [(0.0, a, 1.0, b) for a, b in bands]
        theirs = np.concatenate([_torch_pool_boxes(np.asarray(f), boxes) * s
                                 for f, s in zip(per_member, scales)], axis=1)
        assert ours[i].shape == theirs.shape == (len(bands), ens.dim)
        assert np.abs(ours[i] - theirs).max() < 1e-5
        np.testing.assert_allclose(np.linalg.norm(ours[i], axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_a_default_match_and_timeline_with_a_warm_cache_do_not_import_torch(engine, demo_dir, tmp_path):
    """Fresh processes, default settings, the demo indexed and the exports cached (the ``engine`` fixture): a match
    and a timeline load neither torch nor torchvision nor timm (nor onnx or ONNX Runtime, which OpenVINO does not
    need); the torch runtime does load torch (the probe sees it)."""
    clip = sorted((demo_dir / "video").glob("*.mp4"))[0]
    cpu = ["--device", "cpu"] if torch_may_see_gpu() else []  # where torch may see a GPU, "auto" must ask it
    base = ["--catalogue", str(demo_dir), *cpu]
    _loaded("match", str(clip), "--frames", "4", *base)  # warm: where the fixture's engine ran elsewhere (a GPU),
    # this run exports the CPU models; the runs below must then load no torch
    assert _loaded("match", str(clip), "--frames", "4", *base) == []
    assert _loaded("timeline", str(clip), "--json", str(tmp_path / "t.json"), *base) == []
    assert json.loads((tmp_path / "t.json").read_text())["segments"]
    assert "torch" in _loaded("match", str(clip), "--frames", "2", "--runtime", "torch", *base)


def test_torch_version_and_gpu_hint_need_no_torch_and_agree_with_it():
    """Read without importing torch: its version (part of the exports' cache key, so existing exports are found) is
    torch.__version__; where the hint says no GPU is possible, torch sees none."""
    code = ("import json, sys\nfrom engine.models.pooling import torch_may_see_gpu, torch_version\n"
            "found = [torch_version(), torch_may_see_gpu(), 'torch' in sys.modules]\nimport torch\n"
            "print(json.dumps(found + [str(torch.__version__), torch.cuda.is_available()]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    version, may_see_gpu, imported, real_version, gpu = json.loads(done.stdout.splitlines()[-1])
    assert not imported and version == real_version
    assert may_see_gpu or not gpu


def test_without_torch_installed_no_gpu_is_possible(monkeypatch: pytest.MonkeyPatch):
    """Where torch is not installed, "auto" resolves to the CPU without trying to import it (no bare ImportError)."""
    import importlib.util

    import engine.models.pooling as pooling

    real = importlib.util.find_spec
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(pooling.importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    monkeypatch.setattr(pooling, "_torch_version_file", lambda: {})  # what reading a missing torch's version gives
    assert pooling.torch_may_see_gpu() is False
