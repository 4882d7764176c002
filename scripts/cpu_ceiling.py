"""How close OpenVINO runs the default embedder to this CPU's f32 ceiling, and what 2.5x PyTorch would need.

Prints, in one run: the multiply-adds per region of the default embedder's vectors model (every member, at its
input size), its time per layer type at batch 8 (OpenVINO's performance counters) and the multiply-adds per second it
reaches; the multiply-adds per second of large 1x1 convolutions (a GEMM: the most this CPU's kernels reach at f32);
torch's regions/s for the same embedder; and the share of the ceiling that 2.5x torch's rate would take. The
figures of docs/performance-cpu.md, on the path without bf16:

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python scripts/cpu_ceiling.py
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the engine beside this folder

from engine.config import Settings  # noqa: E402
from engine.eval.bench import EMBED_WINDOWS, rate  # noqa: E402
from engine.models import get_embedder  # noqa: E402

BATCH = 8
CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": "f32"}


def macs_per_item(model) -> dict[str, float]:
    """Multiply-adds of the (batch 1) model's convolutions, by type."""
    out: dict[str, float] = collections.Counter()
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "GroupConvolution"):
            h, w = op.get_output_shape(0)[2:]
            out[kind] += float(np.prod(list(op.input(1).get_source_output().get_shape()))) * h * w
    return dict(out)


def profile(model, shape: tuple[int, ...], runs: int = 20) -> tuple[float, dict[str, float], set[str]]:
    """(seconds per call, seconds per call by layer type, the convolution kernels run) at ``shape``."""
    import openvino as ov

    m = model.clone()
    m.reshape(list(shape))
    req = ov.Core().compile_model(m, "CPU", dict(CONFIG, PERF_COUNT=True)).create_infer_request()
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(3):
        req.infer({0: x})
    by_type: dict[str, float] = collections.Counter()
    kernels: set[str] = set()
    t0 = time.perf_counter()
    for _ in range(runs):
        req.infer({0: x})
        for p in req.profiling_info:
            if p.status == p.Status.EXECUTED:
                by_type[p.node_type] += p.real_time.total_seconds() / runs
                if "Convolution" in p.node_type:
                    kernels.add(p.exec_type)
    return (time.perf_counter() - t0) / runs, dict(by_type), kernels


def conv1x1(channels: int, hw: int):  # -> openvino.Model
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([BATCH, channels, hw, hw], np.float32)
    w = ops.constant(np.random.default_rng(0).random((channels, channels, 1, 1), dtype=np.float32))
    return ov.Model([ops.convolution(x, w, [1, 1], [0, 0], [0, 0], [1, 1])], [x])


def main() -> None:
    from engine.models.openvino_rt import cpu_capabilities

    name = Settings().models.embedder
    ov_emb = get_embedder(name, device="cpu", runtime="openvino", precision="f32")
    graph = getattr(ov_emb, "vectors_graph", None) or ov_emb.backbone
    hw = tuple(ov_emb.input_hw)
    one = graph.model.clone()
    one.reshape([1, 3, *hw])
    macs = macs_per_item(one)
    total = sum(macs.values())
    print(f"OpenVINO CPU capabilities: {', '.join(cpu_capabilities())}")
    print(f"{name} at {hw[0]}x{hw[1]}: {total / 1e6:.0f} M multiply-adds per region "
          + ", ".join(f"{k} {v / 1e6:.0f} M" for k, v in macs.items()))
    seconds, by_type, kernels = profile(graph.model, (BATCH, 3, *hw))
    print(f"OpenVINO f32, batch {BATCH}: {BATCH / seconds:.1f} regions/s, {total * BATCH / seconds / 1e9:.1f} G "
          f"multiply-adds/s overall; kernels {sorted(kernels)}")
    for kind, s in sorted(by_type.items(), key=lambda kv: -kv[1])[:4]:
        extra = f", {macs[kind] * BATCH / s / 1e9:.1f} G multiply-adds/s" if kind in macs else ""
        print(f"  {kind}: {1000 * s:.1f} ms per batch ({100 * s / seconds:.0f}%){extra}")
    ceiling = 0.0
    for channels, size in ((256, 56), (512, 28), (1024, 14)):
        s, _, k = profile(conv1x1(channels, size), (BATCH, channels, size, size), runs=10)
        rate = BATCH * channels * channels * size * size / s / 1e9
        ceiling = max(ceiling, rate)
        print(f"1x1 convolution {channels}->{channels} at {size}x{size}, batch {BATCH}: {rate:.1f} G multiply-adds/s "
              f"{sorted(k)}")
    torch_emb = get_embedder(name, device="cpu", runtime="torch")
    crops = [np.random.default_rng(i).integers(0, 255, (300, 200, 3), dtype=np.uint8) for i in range(BATCH)]
    torch_rate = rate(lambda: len(torch_emb.embed(crops, BATCH)), min_s=1.5, windows=EMBED_WINDOWS)  # as the bench
    need = 2.5 * torch_rate * total / 1e9
    print(f"torch, batch {BATCH}: {torch_rate:.1f} regions/s; 2.5x that is {2.5 * torch_rate:.1f} regions/s = "
          f"{need:.1f} G multiply-adds/s, {100 * need / ceiling:.0f}% of the best 1x1 convolution "
          f"({ceiling:.1f}); OpenVINO reaches {100 * total * BATCH / seconds / 1e9 / ceiling:.0f}% of it")


if __name__ == "__main__":
    main()
