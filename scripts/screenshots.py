"""Take full-page screenshots of every page of the app into assets/screenshots/.

Match (with a result, another clip's result for the frames, the first clip with an uncertain verdict if there is
one, a clip of a product the catalogue does not have, and reading a stream URL), Inspect (all frames, then errors only), Catalogue (and its Learned models tab, after
training a garment head) and Evaluate.

    python scripts/screenshots.py [--catalogue FOLDER] [--frames N] [--home DIR] [--out DIR]

Uses the built-in demo by default. The evaluation is run first (in this process) so that the Inspect and
Evaluate pages have a report; the app then reuses its index. Needs Playwright's Python package and Debian's
chromium (apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.browser import (CHROMIUM_ARGS, app_server, chromium_path, full_page_screenshot,  # noqa: E402
                             serve_folder, wait_idle)

OUT = ROOT / "assets" / "screenshots"
WIDTH = 1400


def prepare(home: Path, catalogue: str, frames: int) -> tuple[Path, list[Path], list[Path]]:
    """Generate the demo if needed and save an evaluation report; returns (catalogue folder, the clips of its
    products with the one to upload first last, the clips of products it does not have)."""
    os.environ["LIVEMATCH_HOME"] = str(home)
    from engine.io.catalogue import load_catalogue
    from engine.config import Settings
    from engine.eval.evaluate import evaluate, save_report
    from engine.workspace import catalogue_root

    settings = Settings.from_env(catalogue=catalogue, frames=frames)
    root = catalogue_root(settings).absolute()
    cat = load_catalogue(root)
    clips = [c for c in cat.clips.values() if c.path and c.truth is not None]
    absent = [Path(c.path or "") for c in cat.clips.values() if c.path and c.truth is None]
    if not clips:
        raise SystemExit(f"{root} has no clips of its products to show")
    t = time.perf_counter()
    report = evaluate(str(root), settings, catalogue=cat)
    save_report(report, home / "reports" / f"{root.name}.json")
    print(f"evaluation: top-1 {report.metrics.top1:.2f} in {time.perf_counter() - t:.0f} s", flush=True)
    return root, [Path(c.path or "") for c in clips], absent


VERDICT = ('[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentWarning"], '
           '[data-testid="stAlertContentInfo"]')  # confident, uncertain, not in the catalogue


def shoot(url: str, clips: list[Path], out: Path = OUT, absent: list[Path] = ()) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, device_scale_factor=1)
            page.set_default_timeout(180_000)

            page.goto(f"{url}/")  # the Match page is the default page
            wait_idle(page)
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(clips[-1]))
            page.get_by_text("is shown in").wait_for(timeout=300_000)
            wait_idle(page)
            shots.append(_save(page, out, "match"))
            why, uncertain = None, None  # another clip's frames, and the first uncertain verdict, if any
            for clip in clips[:-1]:
                if why is not None and uncertain is not None:
                    break
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(clip))
                page.locator('[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentWarning"]').filter(
                    has_text=clip.name).first.wait_for(timeout=300_000)
                wait_idle(page)
                if page.locator('[data-testid="stAlertContentWarning"]').filter(has_text="Uncertain").count():
                    if uncertain is None:
                        uncertain = _save(page, out, "match-uncertain")
                elif why is None:
                    why = _save(page, out, "match-why")
            if uncertain is None:
                print("no clip of this catalogue gets an uncertain verdict: match-uncertain.png is left as it is")
            shots += [s for s in (why, uncertain) if s is not None]
            for clip in absent[:1]:  # a product the catalogue does not have: whatever the verdict says
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(clip))
                grey = page.get_by_text("Not in the catalogue.")  # the grey verdict is a bordered block, no alert
                page.locator(VERDICT).filter(has_text=clip.name).or_(grey).first.wait_for(timeout=300_000)
                wait_idle(page)
                shots.append(_save(page, out, "match-absent"))

            page.goto(f"{url}/inspect")
            wait_idle(page)
            shots.append(_save(page, out, "inspect"))
            page.get_by_text("Errors only").click()  # frames whose vote missed, if any
            wait_idle(page)
            shots.append(_save(page, out, "inspect-errors"))

            page.goto(f"{url}/catalogue")
            wait_idle(page)
            shots.append(_save(page, out, "catalogue"))
            page.get_by_text("Learned models").click()  # train the garment head on the demo, in the app
            wait_idle(page)
            page.get_by_role("button", name="Train the garment head").click()
            page.get_by_text("It is now selected under Models").wait_for(timeout=300_000)
            wait_idle(page)
            page.get_by_text("Learned models").click()
            wait_idle(page)
            shots.append(_save(page, out, "learned"))

            page.goto(f"{url}/evaluate")
            wait_idle(page)
            shots.append(_save(page, out, "evaluate"))
        finally:
            browser.close()
    return shots


def shoot_stream(url: str, clip: Path, out: Path = OUT) -> Path:
    """Match, Stream URL: the clip served over HTTP from this process, read as a live stream to its end."""
    from playwright.sync_api import sync_playwright

    with serve_folder(clip.parent) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, device_scale_factor=1)
            page.set_default_timeout(180_000)
            page.goto(f"{url}/match")
            wait_idle(page)
            page.get_by_text("Stream URL", exact=True).click()
            box = page.locator(".st-key-match-stream_url input")
            box.fill(f"{base}/{clip.name}")
            page.get_by_role("button", name="Start").click()
            page.get_by_text("The stream ended after").wait_for(timeout=300_000)
            wait_idle(page)
            path = _save(page, out, "match-stream")
        finally:
            browser.close()
    return path


def _save(page, out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    full_page_screenshot(page, path, WIDTH)
    print(f"saved {path}", flush=True)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalogue", default=os.environ.get("LIVEMATCH_CATALOGUE", ""), help="default: built-in demo")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--home", type=Path, help="LIVEMATCH_HOME for the run (default: a fresh temporary folder)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"where the PNGs go (default: {OUT.relative_to(ROOT)})")
    ap.add_argument("--only-stream", action="store_true", help="only the Match page reading a stream URL")
    args = ap.parse_args()
    if chromium_path() is None:
        print("chromium is not installed: apt-get install -y chromium", file=sys.stderr)
        return 2
    home = args.home or Path(tempfile.mkdtemp(prefix="livematch-shots-"))
    started = time.perf_counter()
    root, clips, absent = prepare(home, args.catalogue, args.frames)
    env = {"LIVEMATCH_HOME": str(home), "LIVEMATCH_CATALOGUE": args.catalogue, "LIVEMATCH_FRAMES": str(args.frames)}
    env["LIVEMATCH_STREAM_EVERY"] = "1"  # the demo's clips are short: a frame every second of them
    with app_server(env, home / "streamlit.log") as url:
        if not args.only_stream:
            shoot(url, clips, args.out, absent)
        shoot_stream(url, clips[-1], args.out)
    print(f"screenshots taken in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
