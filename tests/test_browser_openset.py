"""Issue 32 in a real browser, on real data: a development clip whose product is not in the catalogue is never
shown with the green *confident* banner. The development set is copied to a temporary folder without the clip's
product (its photos and their annotations), the app is started on that copy, the clip is uploaded, and the verdict
must be amber (*uncertain*) or grey (*not in the catalogue*). 000134 is the clip the former verdict called confident
with 10 of 10 frames for another product once its own was removed.

Needs ../shared/data/watchlive-dev (marker ``shared``: skipped on a fresh clone), chromium and Playwright.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support.browser import CHROMIUM_ARGS, app_server, wait_idle
from tests.conftest import SHARED

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.shared]

DEV = SHARED.parent / "watchlive-dev"
CLIP = "000134"


def _without(product: str, dst: Path) -> Path:
    """A copy of the development set without ``product`` in its catalogue (its clip kept), in ``dst``."""
    skip = {product}
    for part in ("image", "image_annotation"):
        shutil.copytree(DEV / part, dst / part, ignore=lambda d, names: [n for n in names if n in skip])
    (dst / "video").mkdir()
    shutil.copy2(DEV / "video" / f"{product}.mp4", dst / "video" / f"{product}.mp4")
    return dst


def test_a_clip_whose_product_is_not_in_the_catalogue_is_not_green(chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    catalogue = _without(CLIP, tmp_path / "dev-without")
    assert not (catalogue / "image" / CLIP).exists() and (catalogue / "video" / f"{CLIP}.mp4").is_file()
    env = {"LIVEMATCH_HOME": os.environ["LIVEMATCH_HOME"], "LIVEMATCH_CATALOGUE": str(catalogue)}
    with app_server(env, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/")
            wait_idle(page, 300_000)
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                str(catalogue / "video" / f"{CLIP}.mp4"))
            verdicts = page.locator('[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentWarning"]')
            grey = page.get_by_text("Not in the catalogue.")
            verdicts.filter(has_text=f"{CLIP}.mp4").or_(grey).first.wait_for(timeout=600_000)
            wait_idle(page, 300_000)
            green = page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text=f"{CLIP}.mp4")
            assert green.count() == 0, green.first.inner_text()
            shown = page.inner_text("body")
            assert "Uncertain." in shown or "Not in the catalogue." in shown
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
