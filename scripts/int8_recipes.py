"""Dev accuracy of int8 quantisation recipes: NNCF options the product does not ship, tried against the shipped one.

    python scripts/int8_recipes.py RECIPE DATASET [CALIBRATION]

RECIPE: "shipped" (NNCF's performance preset, fast bias correction), or "+"-joined changes to it: "nodw" (the
depthwise convolutions left in f32), "of" (NNCF's overflow fix on every layer: weights in 7 bits, for CPUs without
VNNI), "mixed" (NNCF's mixed preset), "fullbc" (full bias correction). CALIBRATION: the catalogue whose photos
calibrate ("demo": the generated demo; default: DATASET's, as ``evaluate`` does). Each run gets its own
LIVEMATCH_HOME under /tmp (int8 models, embeddings and index apart) and prints the evaluation's table. The table of
docs/performance-cpu.md; for the path without VNNI and bf16, prefix ``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the engine beside this folder

CHANGES = ("nodw", "of", "mixed", "fullbc")


def main(recipe: str, dataset: str, calibration: str = "") -> int:
    changes = [] if recipe == "shipped" else recipe.split("+")
    if any(c not in CHANGES for c in changes):
        raise SystemExit(f"unknown recipe {recipe!r}: 'shipped' or '+'-joined {', '.join(CHANGES)}")
    tag = hashlib.sha256(f"{recipe}|{calibration}|{os.environ.get('ONEDNN_MAX_CPU_ISA', '')}".encode()).hexdigest()
    os.environ["LIVEMATCH_HOME"] = f"/tmp/livematch-int8-recipe-{tag[:10]}"
    import nncf

    from engine.cli import main as cli
    from engine.models import quantize

    options = {}  # nncf.quantize's, over the shipped recipe (engine.models.quantize.quantize_onnx)
    if "nodw" in changes:
        options["ignored_scope"] = nncf.IgnoredScope(types=["GroupConvolution"])
    if "mixed" in changes:
        options["preset"] = nncf.QuantizationPreset.MIXED
    if "fullbc" in changes:
        options["fast_bias_correction"] = False
    if "of" in changes:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

        options["advanced_parameters"] = AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE)

    quantize.quantize_onnx = partial(quantize.quantize_onnx, **options)
    quantize.QUANT_FORMAT += f"/recipe:{recipe}"  # never the shipped model's key
    argv = ["evaluate", "--dataset", dataset, "--precision", "int8"]
    if calibration == "demo":  # no catalogue crops: the generated demo's, as without a catalogue
        quantize.catalogue_crops = lambda *a, **k: []
    elif calibration:
        argv += ["--calibration", calibration]
    return cli(argv)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    sys.exit(main(*sys.argv[1:4]))
