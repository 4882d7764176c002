"""The browser tests' one requirement check (support.browser.require_chromium): without chromium they skip on a
developer's machine, and fail where CI requires the browser (LIVEMATCH_REQUIRE_BROWSER=1), never skip silently."""

from __future__ import annotations

import pytest

from support import browser


def test_a_missing_chromium_fails_where_the_browser_is_required_and_skips_elsewhere(monkeypatch):
    monkeypatch.setattr(browser, "chromium_path", lambda: None)
    monkeypatch.setenv("LIVEMATCH_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="chromium is required"):
        browser.require_chromium()
    monkeypatch.delenv("LIVEMATCH_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        browser.require_chromium()
