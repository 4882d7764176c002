"""``startup_s.first_page`` (its fresh-process part) and ``startup_s.first_match`` as the bench takes them
(engine.eval.startup.app_first_run: a fresh Python process runs the app with AppTest to the first match of a demo
clip), several times, warm (OpenVINO's compiled models kept from the run before) and cold (``<home>/openvino-compiled``
removed first), with the CPU seconds each child used: on a busy machine wall time counts the waits for a core, CPU
seconds far less. The figures of docs/performance-cpu.md:

    python scripts/startup_first_match.py HOME [RUNS]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python scripts/startup_first_match.py HOME [RUNS]

HOME: a livematch home; its built-in demo, index and compiled models are made first (untimed), as the bench does.
The checkout measured is the one this script lies in (copy it into another checkout to measure that one).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's engine/ (and its app.py)

from engine.eval.startup import app_first_run, prepare_demo  # noqa: E402
from engine.io.catalogue import load_catalogue  # noqa: E402


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(home: Path, runs: int) -> None:
    catalogue = load_catalogue(prepare_demo(home))
    clip = sorted(v for v, c in catalogue.clips.items() if c.path)[0]
    print(f"home {home}; clip {clip}; ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '')!r}; "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    for case in ("cold", "warm"):
        rows = []
        for _ in range(runs):
            if case == "cold":
                shutil.rmtree(home / "openvino-compiled", ignore_errors=True)
            cpu0 = _children_cpu_s()
            got = app_first_run(home, clip)
            cpu = _children_cpu_s() - cpu0
            if not got["success"] or got["problems"]:
                raise SystemExit(f"no match shown: {got['problems']}")
            rows.append((got["first_page_s"], got["first_match_s"], cpu))
            print(f"  {case}: first page run {rows[-1][0]:.2f} s, first match {rows[-1][1]:.2f} s, "
                  f"{cpu:.2f} CPU s (load average {os.getloadavg()[0]:.2f})", flush=True)
        med = [statistics.median(r[i] for r in rows) for i in range(3)]
        print(f"{case}, median of {runs}: first page run {med[0]:.2f} s, first match {med[1]:.2f} s, "
              f"{med[2]:.2f} CPU s")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
