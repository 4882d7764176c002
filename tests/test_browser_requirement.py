"""The requirement checks (support.requires.missing, support.browser.require_chromium): without chromium they skip on a
developer's machine, and fail where CI requires the browser (LIVEMATCH_REQUIRE_BROWSER=1), never skip silently."""

from __future__ import annotations

import pytest

from support import browser


def test_a_missing_chromium_fails_where_the_browser_is_required_and_skips_elsewhere(monkeypatch):
    monkeypatch.setattr(browser, "chromium_path", lambda: None)
    monkeypatch.setenv("LIVEMATCH_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="chromium is required here"):
        browser.require_chromium()
    monkeypatch.delenv("LIVEMATCH_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception, match="chromium is missing"):
        browser.require_chromium()


def test_every_requirement_flag_fails_only_when_it_is_1(monkeypatch):
    """The Milvus/Ray and git checks use the same rule: "1" requires; unset or "0" skips (a "0" once required)."""
    from support.requires import missing

    for flag in ("LIVEMATCH_REQUIRE_SCALE", "LIVEMATCH_REQUIRE_GIT"):
        monkeypatch.setenv(flag, "1")
        with pytest.raises(pytest.fail.Exception, match=f"pymilvus is required here \\({flag}=1\\)"):
            missing("pymilvus", flag)
        monkeypatch.setenv(flag, "0")
        with pytest.raises(pytest.skip.Exception, match="pymilvus is missing"):
            missing("pymilvus", flag)
