"""Start-up and serving-memory figures of the bench, each taken in a fresh process.

* ``startup_s.server``: ``streamlit run app.py`` launched until ``/_stcore/health`` answers ok.
* ``startup_s.first_page_run``: a fresh Python process, from its start until ``AppTest.from_file("app.py").run()``
  has run the Match page once (no browser here: the page script is run headless by streamlit.testing).
* ``startup_s.first_page``: the two added (an upper bound: the interpreter start and the streamlit import are
  paid in both).
* ``startup_s.first_match``: in that same fresh process, from its start until the first match of a demo clip
  (a sample clip picked on the Match page) is shown.
* ``peak_rss_mb``: the peak RSS (VmHWM) of a fresh process that loads the engine (engine.workspace.ready_engine)
  and matches a clip a few times; the bench's own process, which also ran the batch-128 embedding, is not it.

All of them run on the warm-cache case: the built-in demo, its index, the ONNX exports and OpenVINO's compiled
models of the embedding batch (engine.models.openvino_rt, ``<home>/openvino-compiled``) exist in the home before
anything is timed, as on any start of the app after its first. engine/ imports no streamlit: the app runs in child
processes only.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from engine.config import Settings

ROOT = Path(__file__).resolve().parents[2]  # the repository root, where app.py is
MARK = "LIVEMATCH_BENCH "  # prefix of the line a child prints its figures on
CHILD_TIMEOUT_S = 1200

# Run in a fresh process with cwd = ROOT: the Match page once, then a sample clip of the demo (argv[1]) is picked.
APPTEST = r"""
import json, sys, time
marks = {"start": time.time()}
from streamlit.testing.v1 import AppTest
marks["imported"] = time.time()
at = AppTest.from_file("app.py", default_timeout=900).run()
marks["first_page"] = time.time()
problems = [str(e.value) for e in at.exception]
at.radio(key="match.mode").set_value("Sample clip from the catalogue").run()
at.selectbox(key="match.sample").set_value(sys.argv[1]).run()
marks["first_match"] = time.time()
problems += [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
shown = [str(s.value) for s in at.success]
print("LIVEMATCH_BENCH " + json.dumps({"marks": marks, "problems": problems, "success": shown}), flush=True)
"""


def app_env(home: Path) -> dict[str, str]:
    """The environment the app is started with: this home, the built-in demo (no catalogue folder set)."""
    env = {**os.environ, "LIVEMATCH_HOME": str(home), "LIVEMATCH_CATALOGUE": ""}
    env.pop("LIVEMATCH_DEMO_DIR", None)  # the demo lives in <home>/demo
    return env


def _child(cmd: list[str], env: dict[str, str]) -> dict:
    """Run a child Python command in ROOT and return the figures it prints after MARK."""
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1][len(MARK):])


def prepare_demo(home: Path) -> Path:
    """Generate the built-in demo in <home>/demo, build its index and compile the embedder for its batches, as the
    app would (untimed)."""
    _child([sys.executable, "-m", "engine.eval.startup", "prepare"], app_env(home))
    return home / "demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200 and r.read().strip() == b"ok"
    except OSError:
        return False


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it is still there after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


@contextlib.contextmanager
def app_server(env: dict[str, str | None], log_path: Path, start_timeout_s: float = 180.0,
               plain: bool = False) -> Iterator[str]:
    """Run ``streamlit run app.py`` on a free local port, with ``env`` over this process's environment (None: unset),
    until its health endpoint answers ok; yields its base URL; the server (its whole process group) is always
    stopped. ``plain``: only the port and address are given, everything else comes from the checkout's
    .streamlit/config.toml, as for a user who types the README's command. The one server launcher: the bench,
    the browser tests and the screenshots use it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1"]
    if not plain:
        cmd += ["--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while not _health_ok(f"{url}/_stcore/health"):
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log_path}")
                if time.perf_counter() - t0 > start_timeout_s:
                    raise TimeoutError(f"streamlit was not healthy after {start_timeout_s:.0f} s; see {log_path}")
                time.sleep(0.05)
            yield url
        finally:
            _terminate(proc)


def server_start_s(home: Path, log_path: Path, timeout_s: float = 180.0) -> float:
    """Seconds from launching ``streamlit run app.py`` until its health endpoint answers ok; the server is
    stopped again."""
    t0 = time.perf_counter()
    env = {"LIVEMATCH_HOME": str(home), "LIVEMATCH_CATALOGUE": "", "LIVEMATCH_DEMO_DIR": None}  # as app_env
    with app_server(env, log_path, timeout_s):
        return time.perf_counter() - t0


def app_first_run(home: Path, clip_id: str) -> dict:
    """Fresh-process AppTest of the Match page: seconds from the process start to the imports, the first page
    and the first match of ``clip_id``; plus the page's success messages and any problem shown."""
    t0 = time.time()
    got = _child([sys.executable, "-c", APPTEST, clip_id], app_env(home))
    marks = got["marks"]
    return {"process_start_s": marks["start"] - t0, "imports_s": marks["imported"] - t0,
            "first_page_s": marks["first_page"] - t0, "first_match_s": marks["first_match"] - t0,
            "success": got["success"], "problems": got["problems"]}


def measure_startup(home: Path, work: Path, results: dict, out: Callable[[str], None]) -> None:
    """The ``startup_s.*`` figures, on the built-in demo of ``home`` (generated and indexed first, untimed)."""
    from engine.io.catalogue import load_catalogue

    out(f"start-up: preparing the built-in demo and its index in {home} (untimed) ...")
    catalogue = load_catalogue(prepare_demo(home))
    clip_id = sorted(v for v, c in catalogue.clips.items() if c.path)[0]
    truth = catalogue.products.get(catalogue.clips[clip_id].truth or "")
    name = truth.name if truth else clip_id
    server = server_start_s(home, work / "streamlit.log")
    app = app_first_run(home, clip_id)
    shown = any(name in s for s in app["success"])
    results.update({"startup_s.server": server, "startup_s.first_page_run": app["first_page_s"],
                    "startup_s.first_page": server + app["first_page_s"],
                    "startup_s.first_match": app["first_match_s"] if app["success"] else None,
                    "startup_s.imports": app["imports_s"], "startup_first_match_right": shown})
    out(f"start-up, server: `streamlit run app.py` to /_stcore/health ok: {server:.2f} s")
    out(f"start-up, first page: fresh process to the Match page's first run {app['first_page_s']:.2f} s (of which "
        f"python + streamlit import {app['imports_s']:.2f} s); server + first run = "
        f"{results['startup_s.first_page']:.2f} s (upper bound: the imports are counted twice)")
    if not app["success"]:
        out(f"start-up, first match: NOT shown; problems: {app['problems']}")
        return
    out(f"start-up, first match: fresh process to the first match of demo clip {clip_id} shown: "
        f"{app['first_match_s']:.2f} s ({'the right product' if shown else 'NOT the right product'}: {name})")


def measure_serving_rss(settings: Settings, catalogue_root: Path, index_dir: Path, clip: str, results: dict,
                        out: Callable[[str], None], matches: int = 3) -> None:
    """``peak_rss_mb``: peak RSS of a fresh process serving matches with these settings (frames=10)."""
    flat = settings.with_(frames=10, catalogue=str(catalogue_root), index_dir=str(index_dir)).flat()
    got = _child([sys.executable, "-m", "engine.eval.startup", "serve", json.dumps(flat), clip, str(matches)],
                 dict(os.environ))
    results["peak_rss_mb"] = got["peak_rss_mb"]
    out(f"peak memory (RSS) of a fresh process serving matches (engine loaded in {got['load_s']:.1f} s, {matches} "
        f"matches of the clip, median {statistics.median(got['match_s']):.2f} s): {got['peak_rss_mb']:.0f} MB "
        f"(its ru_maxrss, {got['ru_maxrss_mb']:.0f} MB, carries the memory it was spawned from over exec)")


def _serve(flat_json: str, clip: str, matches: int) -> dict:
    from engine.workspace import ready_engine

    t0 = time.perf_counter()
    engine = ready_engine(Settings.from_flat(json.loads(flat_json)))
    load_s = time.perf_counter() - t0
    times = [engine.match(clip).timings["total"] for _ in range(matches)]
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": _own_peak_rss_mb(), "ru_maxrss_mb": maxrss, "load_s": load_s, "match_s": times}


def _own_peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss is not it in a child: Linux folds the peak of the memory
    it was spawned from (vfork shares the parent's, the bench's 2-3 GB) into ru_maxrss at exec."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    """Child entry points: ``prepare`` (the app's demo and index, from the environment) and
    ``serve SETTINGS_JSON CLIP N`` (load the engine, match N times, report the peak RSS)."""
    if argv[0] == "prepare":
        from engine.workspace import ready_engine

        ready_engine(Settings.from_env()).prepare()  # the compiled models kept, as by the app's first start
        print(MARK + "{}", flush=True)
    elif argv[0] == "serve":
        print(MARK + json.dumps(_serve(argv[1], argv[2], int(argv[3]))), flush=True)
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
