"""What the pipeline benchmark reports beside its figures, and what the app reads of them: the machine it ran on, the
targets met or not, the last bench's figures (``<home>/bench/last.json``) and the app's speed hint from them."""

from __future__ import annotations

import json
import os
import platform
import resource
from pathlib import Path
from typing import Callable

from engine.io.files import atomic_write
from engine.models.openvino_rt import cpu_capabilities

# The targets on a 2-core CPU: (result key, at most / at least, value); a key "a / b" is a ratio.
TARGETS = (
    ("e2e_s.default", "<=", 1.0),
    ("e2e_s.default / e2e_s.lite0_previous", "<=", 1.5),  # the speed budget of a default (issue 29; was 1.0)
    ("embed_per_s.default / embed_per_s.torch", ">=", 2.5),
    ("index_images_per_s", ">=", 60.0),
    ("startup_s.first_page", "<=", 3.0),
    ("startup_s.first_match", "<=", 8.0),
    ("peak_rss_mb", "<=", 1500.0),
)
# The targets on one data-centre GPU (an H100): the same bench's keys, compared only when it ran on a GPU
# (``results["gpu"]``: the embedder's device was CUDA), else printed as not measured.
GPU_TARGETS = (
    ("embed_per_s.default", ">=", 5000.0),  # regions/s, the default runtime's best batch
    ("batch_clips_per_s_default", ">=", 20.0),  # clips/s, 8 clips of 10 frames, the default windows
)
# CPU instruction sets the bench reports: name -> any of these /proc/cpuinfo flags.
INSTRUCTION_SETS = {"AVX2": ("avx2",), "AVX-512": ("avx512f",), "VNNI": ("avx512_vnni", "avx_vnni"),
                    "AVX512_BF16": ("avx512_bf16",), "AMX": ("amx_tile", "amx_bf16", "amx_int8")}
LAST_BENCH = ("bench", "last.json")  # under the livematch home: the last bench's figures (the app's speed hint)



def check_targets(results: dict, out: Callable[[str], None]) -> None:
    """Print each target beside what this run measured, met or not; the GPU targets only where a GPU ran."""
    _check(TARGETS, results, out, "")
    if results.get("gpu"):
        _check(GPU_TARGETS, results, out, "GPU ")
    else:
        for key, op, target in GPU_TARGETS:
            out(f"target GPU {key} {op} {target:g}: not measured (no GPU in this run)")


def _check(targets: tuple, results: dict, out: Callable[[str], None], prefix: str) -> None:
    for key, op, target in targets:
        if "/" in key:
            a, b = (k.strip() for k in key.split("/"))
            value = results[a] / results[b] if results.get(a) is not None and results.get(b) else None
        else:
            value = results.get(key)
        if value is None:
            out(f"target {prefix}{key} {op} {target:g}: not measured")
            continue
        met = value <= target if op == "<=" else value >= target
        out(f"target {prefix}{key} {op} {target:g}: {value:.2f} ({'met' if met else 'NOT met'})")


def cpu_info(text: str | None = None) -> tuple[str, set[str]]:
    """(the CPU's model name, its /proc/cpuinfo flags) from ``text`` (default: this machine's /proc/cpuinfo)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
    name, flags = "", set()
    for line in text.splitlines():  # the first processor's lines
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not name:
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return name or platform.processor() or platform.machine(), flags


def instruction_sets(flags: set[str]) -> dict[str, bool]:
    """AVX2, AVX-512, VNNI, AVX512_BF16 and AMX: whether the CPU flags name each."""
    return {k: any(f in flags for f in names) for k, names in INSTRUCTION_SETS.items()}


def speed_hint(last: dict | None) -> dict[str, str]:
    """The app's speed hints from the last bench's figures: {"standard": ..., "exhaustive": ...} (the default
    windows and every window embedded), each "about X s per clip on <cpu> (last bench)", or a neutral sentence when
    there is no bench result."""
    def median(key: str) -> float | None:
        value = (last or {}).get(key)
        value = value.get("median_s") if isinstance(value, dict) else value
        return float(value) if isinstance(value, (int, float)) else None

    info = (last or {}).get("machine")
    cpu = info.get("cpu") if isinstance(info, dict) else (info.split(",")[0] if isinstance(info, str) else None)
    out = {}
    for mode, key in (("standard", "e2e_s.default"), ("exhaustive", "end_to_end_exhaustive")):
        seconds = median(key)
        out[mode] = (f"about {seconds:.1f} s per clip on {cpu or 'this CPU'} (last bench)" if seconds
                     else "its time per clip on this machine: run python -m engine bench")
    return out


def machine() -> dict:
    """Where the bench runs: the CPU, its instruction sets, OpenVINO's CPU capabilities (what its plugin will use;
    ``ONEDNN_MAX_CPU_ISA``, when set, caps the instruction sets oneDNN uses), the GPU, the library versions."""
    import torch  # lazy: the app imports this module for its speed hint, and torch takes seconds to load

    cpu, flags = cpu_info()
    info: dict = {"cpu": cpu, "cores": os.cpu_count(), "instruction_sets": instruction_sets(flags),
                  "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
                  "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU",
                  "torch": torch.__version__, "load_average": load_average()}
    try:
        import openvino as ov  # an optional dependency

        info["openvino"] = ov.get_version()
        info["openvino_cpu_capabilities"] = list(cpu_capabilities())
    except Exception:  # noqa: BLE001 - not installed
        info["openvino_cpu_capabilities"] = []
    return info


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: more than the cores means the figures count waits for a core."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def describe_machine(info: dict) -> str:
    """One line: the CPU, cores, instruction sets present, OpenVINO's capabilities, the GPU."""
    isa = [k for k, v in info.get("instruction_sets", {}).items() if v]
    capped = f" (oneDNN capped at {info['onednn_max_cpu_isa']})" if info.get("onednn_max_cpu_isa") else ""
    return (f"{info.get('cpu')}, {info.get('cores')} cores, {' '.join(isa) or 'no AVX2'}{capped}; OpenVINO CPU "
            f"capabilities {', '.join(info.get('openvino_cpu_capabilities', [])) or 'n/a'}; {info.get('gpu')}; "
            f"load average {info.get('load_average')}")


def save_last(results: dict, home: Path) -> Path:
    """Write the bench's figures to ``<home>/bench/last.json`` (the app's speed hint reads them)."""
    path = home.joinpath(*LAST_BENCH)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(results, indent=1))
    return path


def load_last(home: Path) -> dict | None:
    """The last bench's figures, or None when there are none (or they cannot be read)."""
    try:
        data = json.loads(home.joinpath(*LAST_BENCH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
