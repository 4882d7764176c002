"""Drive the app with Playwright (the browser tests and scripts/screenshots.py): chromium, waits, full-page
screenshots, and a local file server with byte ranges. The app server itself is engine.eval.startup.app_server
(the bench starts it too), re-exported here; it runs in its own process group and is always killed on exit; every
wait is bounded.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
from pathlib import Path
from typing import Iterator

from engine.eval.startup import ROOT, app_server  # noqa: F401 - the repository root and the one server launcher

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    for p in CHROMIUM_CANDIDATES:
        if Path(p).is_file() and os.access(p, os.X_OK):
            return p
    return shutil.which("chromium")


def require_chromium() -> str:
    """chromium's path for Playwright; the calling test skips when chromium or Playwright is missing, except where
    LIVEMATCH_REQUIRE_BROWSER=1 (.ci/run sets it when it installed chromium): there it fails, so CI cannot pass
    with the browser tests silently skipped."""
    from support.requires import missing

    path = chromium_path()
    if path is None:
        missing("chromium", "LIVEMATCH_REQUIRE_BROWSER", "apt-get install -y chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("Playwright's Python package", "LIVEMATCH_REQUIRE_BROWSER", "pip install -r requirements.txt")
    return path


IDLE_JS = """() => !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-testid="stSpinner"]')
    && !document.querySelector('[data-testid="stSkeleton"]')"""


def wait_idle(page, timeout_ms: int = 180_000) -> None:
    """Wait until the page has rendered and the app is no longer running (no 'Running…' status, spinner or
    skeleton), twice in a row half a second apart."""
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=timeout_ms)
    for _ in range(2):
        page.wait_for_function(IDLE_JS, timeout=timeout_ms, polling=200)
        page.wait_for_timeout(500)


def wait_images(page, timeout_ms: int = 20_000) -> None:
    """Wait (bounded, never failing) for the images in view to finish loading."""
    try:
        page.wait_for_function(
            "() => Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)",
            timeout=timeout_ms, polling=250,
        )
    except Exception:  # noqa: BLE001 - a missing image must not stop the screenshots
        pass


def full_page_screenshot(page, path: Path, width: int = 1400) -> None:
    """Streamlit scrolls inside its main container: grow the viewport to the content's height, then shoot."""
    height = page.evaluate(
        """() => {
            const main = document.querySelector('[data-testid="stMain"]') || document.querySelector('section.main');
            const block = document.querySelector('[data-testid="stMainBlockContainer"]');
            const h = Math.max(block ? block.scrollHeight + 40 : 0, main ? main.scrollHeight : 0, 900);
            return Math.min(h, 12000);
        }"""
    )
    page.set_viewport_size({"width": width, "height": int(height)})
    page.wait_for_timeout(600)
    wait_images(page)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 900})


@contextlib.contextmanager
def serve_folder(folder: Path, ranges: bool = True) -> Iterator[str]:
    """A local HTTP server over ``folder``, with byte ranges (as real servers have: FFmpeg reads an mp4 whose index
    sits at its end by seeking), or without (``ranges=False``: the standard library's ``python -m http.server``,
    which ignores a Range header); yields its base URL, and is shut down on exit."""
    import functools
    import http.server
    import threading

    handler = functools.partial(_RangeHandler if ranges else _PlainHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):  # byte ranges on top of the standard library's file server
        rng = self.headers.get("Range", "")
        path = Path(self.translate_path(self.path))
        if not rng.startswith("bytes=") or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start_s, _, end_s = rng[6:].partition("-")
        start, end = int(start_s or 0), min(int(end_s or size - 1), size - 1)
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return _Limited(f, end - start + 1)

    def log_message(self, *args):
        pass


class _PlainHandler(http.server.SimpleHTTPRequestHandler):
    """``python -m http.server`` as it is: the whole file for any request, Range ignored."""

    def log_message(self, *args):
        pass


class _Limited:
    """A file object that reads at most ``n`` more bytes (the body of a range response)."""

    def __init__(self, f, n: int) -> None:
        self.f, self.n = f, n

    def read(self, size: int = -1) -> bytes:
        size = self.n if size < 0 else min(size, self.n)
        data = self.f.read(size)
        self.n -= len(data)
        return data

    def close(self) -> None:
        self.f.close()
