"""Text is text, in a real browser (issue 30): a catalogue whose names, shop and category label hold Markdown
images, HTML and links to a loopback server; on all four pages (a matched upload, the catalogue, an evaluation and
its inspection) the browser sends that server no request, and no such tag is drawn."""

from __future__ import annotations

import http.server
import json
import os
import threading
from pathlib import Path

import pytest
from test_browser_e2e import MATCH_TIMEOUT_MS, _app_page

from engine.io.editing import copy_catalogue
from support.browser import wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _pixel_server():
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked


def test_no_request_leaves_the_browser_for_an_address_in_catalogue_text(chromium: str, demo_dir: Path,
                                                                         tmp_path: Path) -> None:
    server, asked = _pixel_server()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    hostile = (f'![px]({base}/md.png) <img src="{base}/img.png"> <b style="font-size:80px">big</b> '
               f'<a href="{base}/a">a</a>')
    root = copy_catalogue(demo_dir, tmp_path / "shop")
    ids = sorted(p.name for p in (root / "image").iterdir())
    (root / "products.json").write_text(json.dumps({pid: {"name": f"{hostile} {pid}", "shop": hostile}
                                                    for pid in ids}), encoding="utf-8")
    env = {"LIVEMATCH_HOME": str(tmp_path / "home"), "LIVEMATCH_CATALOGUE": str(root), "LIVEMATCH_FRAMES": "3"}
    seen: list[str] = []
    try:
        with _app_page(chromium, env, tmp_path / "streamlit.log") as (url, page):
            page.on("request", lambda r: seen.append(r.url))
            page.goto(f"{url}/")
            wait_idle(page, 180_000)
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                str(root / "video" / f"{ids[0]}.mp4"))
            page.get_by_text("sampled frame").first.wait_for(timeout=MATCH_TIMEOUT_MS)
            wait_idle(page, MATCH_TIMEOUT_MS)
            pages = ["match"]
            for path in ("catalogue", "evaluate"):
                page.goto(f"{url}/{path}")
                wait_idle(page, 120_000)
                pages.append(path)
            page.get_by_role("button", name="Run evaluation").click()
            page.get_by_text("Evaluation finished").wait_for(timeout=MATCH_TIMEOUT_MS * 2)
            wait_idle(page, MATCH_TIMEOUT_MS)
            page.goto(f"{url}/inspect")
            wait_idle(page, 120_000)
            pages.append("inspect")
            body = page.inner_text("body")
            assert "![px]" in body or "md.png" in body, "the hostile name is on the page, as text"
            drawn = page.evaluate("""(base) => Array.from(document.querySelectorAll(
                '[data-testid="stMain"] b[style*="80px"], img[src^="' + base + '"], a[href^="' + base + '"]'))
                .map(e => e.outerHTML.slice(0, 200))""", base)
            assert drawn == [], drawn
            assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        server.shutdown()
        server.server_close()
    assert asked == [], asked  # the loopback server named in catalogue text got nothing
    assert not [u for u in seen if u.startswith(base)]
    assert pages == ["match", "catalogue", "evaluate", "inspect"]
