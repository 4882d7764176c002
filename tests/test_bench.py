"""The bench's report of where it ran (CPU, instruction sets, OpenVINO's capabilities), its targets, and the last
result the app's speed hint reads. No models are run here."""

from __future__ import annotations

import json

from engine.eval import bench_machine

CPUINFO_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 avx avx2 fma bmi2

processor\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 avx avx2 fma bmi2
"""
CPUINFO_SPR = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8
"""


def test_instruction_sets_from_cpuinfo_flags():
    name, flags = bench_machine.cpu_info(CPUINFO_AVX2)
    assert name == "AMD EPYC 7B12"
    assert bench_machine.instruction_sets(flags) == {"AVX2": True, "AVX-512": False, "VNNI": False, "AVX512_BF16": False,
                                             "AMX": False}
    name, flags = bench_machine.cpu_info(CPUINFO_SPR)
    assert name.startswith("Intel(R) Xeon(R) Platinum")
    assert all(bench_machine.instruction_sets(flags).values())
    assert bench_machine.instruction_sets({"avx_vnni"})["VNNI"] and not bench_machine.instruction_sets({"avx_vnni"})["AVX-512"]


def test_machine_lists_instruction_sets_and_openvino_capabilities():
    info = bench_machine.machine()
    assert set(info["instruction_sets"]) == {"AVX2", "AVX-512", "VNNI", "AVX512_BF16", "AMX"}
    assert all(isinstance(v, bool) for v in info["instruction_sets"].values())
    assert info["cpu"] and info["cores"] >= 1
    assert "FP32" in info["openvino_cpu_capabilities"]  # OpenVINO is a requirement
    line = bench_machine.describe_machine(info)
    assert info["cpu"] in line and "OpenVINO CPU capabilities" in line
    json.dumps(info)  # goes into the JSON as it is


def test_targets_include_the_previous_default_ratio_and_gpu_rows_only_as_not_measured():
    lines: list[str] = []
    bench_machine.check_targets({"e2e_s.default": 0.9, "e2e_s.lite0_previous": 0.5, "startup_s.first_match": 9.0}, lines.append)
    text = "\n".join(lines)
    assert "e2e_s.default / e2e_s.lite0_previous <= 1.5: 1.80 (NOT met)" in text
    assert "e2e_s.default <= 1: 0.90 (met)" in text and "startup_s.first_match <= 8: 9.00 (NOT met)" in text
    assert "index_images_per_s >= 60: not measured" in text
    gpu = [line for line in lines if "GPU" in line]  # the GPU rows are compared only where a GPU ran
    assert gpu and all("not measured (no GPU in this run)" in line for line in gpu)


def test_last_bench_is_saved_and_read_for_the_speed_hint(tmp_path):
    assert bench_machine.load_last(tmp_path) is None
    neutral = bench_machine.speed_hint(None)
    assert "python -m engine bench" in neutral["standard"] and "s per clip on" not in neutral["standard"]
    results = {"machine": {"cpu": "AMD EPYC 7B12"}, "e2e_s.default": 0.934,
               "end_to_end_exhaustive": {"median_s": 2.41}}
    path = bench_machine.save_last(results, tmp_path)
    assert path == tmp_path / "bench" / "last.json" and bench_machine.load_last(tmp_path) == results
    hint = bench_machine.speed_hint(bench_machine.load_last(tmp_path))
    assert hint == {"standard": "about 0.9 s per clip on AMD EPYC 7B12 (last bench)",
                    "exhaustive": "about 2.4 s per clip on AMD EPYC 7B12 (last bench)"}
    path.write_text("{not json")
    assert bench_machine.load_last(tmp_path) is None


def test_the_sidebar_speed_hint_reads_the_last_bench(monkeypatch, tmp_path):
    """The Garment search help quotes the last bench of this home, and a neutral sentence when there is none."""
    import os
    from pathlib import Path

    from support.apptest import open_app

    home = Path(os.environ["LIVEMATCH_HOME"])

    def help_text() -> str:
        at = open_app()
        helps = [e.proto.help for e in at.sidebar.get("button_group") if "Standard (default)" in e.proto.help]
        assert len(helps) == 1
        return helps[0]

    last = home / "bench" / "last.json"
    assert not last.exists()
    assert "run python -m engine bench" in help_text() and "last bench" not in help_text()
    try:
        bench_machine.save_last({"machine": {"cpu": "Test CPU 9000"}, "e2e_s.default": 1.23}, home)
        text = help_text()
        assert "about 1.2 s per clip on Test CPU 9000 (last bench)" in text and "1.8 s" not in text
    finally:
        last.unlink()


def test_the_bench_command_takes_quick_and_json():
    from engine.cli import build_parser

    args = build_parser().parse_args(["bench", "--quick", "--runs", "3", "--json", "f.json"])
    assert args.quick and args.runs == 3 and args.json == "f.json"
    assert not build_parser().parse_args(["bench"]).quick


def test_an_embedding_rate_is_the_median_of_its_windows(monkeypatch):
    """One slow call (a first run of a shape, a busy moment) no longer decides a rate: on a fake clock, windows of
    0.5, 2 and 4 items/s give 2."""
    from types import SimpleNamespace

    from engine.eval import bench

    clock = [0.0]
    steps = iter([0.5, 2.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25])  # a warm call, then the three windows' calls
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(bench, "_cpu_s", lambda: 2 * clock[0])

    def one_item() -> int:
        clock[0] += next(steps)
        return 1

    got: dict = {}
    assert bench.rate(one_item, min_s=1.0, cpu=got, windows=3) == 2.0
    assert got["per_cpu_s"] == 1.0  # two CPU seconds per second of the clock
