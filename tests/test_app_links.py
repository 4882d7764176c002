"""The catalogue folder typed in the sidebar is kept in the page's URL (?catalogue=...): a reload, a new tab or a
shared link shows the same catalogue instead of falling back to the demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.apptest import TIMEOUT, APP, assert_clean, use_catalogue
from streamlit.testing.v1 import AppTest


def test_the_catalogue_folder_is_kept_in_the_url_and_a_link_reproduces_it(monkeypatch: pytest.MonkeyPatch,
                                                                           demo_dir: Path) -> None:
    use_catalogue(monkeypatch, "")  # the built-in demo by default
    monkeypatch.setenv("LIVEMATCH_CATALOGUE_ROOTS", str(demo_dir))  # a folder visitors may open (docs/security.md)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert "catalogue" not in at.query_params  # the demo: a plain URL
    at.text_input(key="cfg.catalogue").set_value(str(demo_dir)).run()
    assert_clean(at)
    assert at.query_params["catalogue"] in (str(demo_dir), [str(demo_dir)])

    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a new session opened from that link
    fresh.query_params["catalogue"] = str(demo_dir)
    fresh.run()
    assert_clean(fresh)
    assert fresh.text_input(key="cfg.catalogue").value == str(demo_dir)
    assert demo_dir.name in " ".join(str(c.value) for c in fresh.sidebar.caption)

    fresh.text_input(key="cfg.catalogue").set_value("").run()  # back to the demo: the parameter goes
    assert "catalogue" not in fresh.query_params
