"""No traceback reaches the user: unexpected failures become a friendly error on every page."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.apptest import assert_clean, open_app, use_catalogue

from ui import state


def _boom(*args, **kwargs):
    raise RuntimeError("an internal detail that must not be shown")


@pytest.mark.parametrize("page, target", [
    ("match", "get_catalogue"),
    ("inspect", "list_reports"),
    ("catalogue", "get_catalogue"),
    ("evaluate", "catalogue_dir"),
])
def test_unexpected_errors_are_friendly(
    monkeypatch: pytest.MonkeyPatch, demo_dir: Path, page: str, target: str
) -> None:
    use_catalogue(monkeypatch, demo_dir)
    at = open_app()
    monkeypatch.setattr(state, target, _boom)
    at.switch_page(f"pages/{page}.py").run()
    assert_clean(at)
    messages = [e.value for e in at.error]
    assert any("Something went wrong" in m for m in messages), messages
    assert not any("internal detail" in m for m in messages)


def test_showing_error_details_is_off() -> None:
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["headless"] is True
    assert config["server"]["maxUploadSize"] == 200


@pytest.mark.parametrize("page", ["match", "inspect", "catalogue", "evaluate"])
def test_every_page_is_drawn_in_the_app_frame(monkeypatch: pytest.MonkeyPatch, demo_dir: Path, page: str) -> None:
    use_catalogue(monkeypatch, demo_dir)
    at = open_app(page)
    assert at.sidebar.text_input(key="cfg.catalogue").value == str(demo_dir)
    assert [s.key for s in at.sidebar.slider] == ["cfg.frames", "cfg.det_threshold", "cfg.top_k"]
    assert at.sidebar.slider(key="cfg.frames").value == 3


@pytest.mark.parametrize("page", ["match", "inspect", "catalogue", "evaluate"])
def test_every_page_switch_runs_the_shell(monkeypatch: pytest.MonkeyPatch, demo_dir: Path, page: str) -> None:
    """The pages live in pages/ (Streamlit's legacy folder): a page switch still draws the app's frame."""
    use_catalogue(monkeypatch, demo_dir)
    at = open_app(page)
    assert at.sidebar.text_input(key="cfg.catalogue").value == str(demo_dir)  # the sidebar settings are there
    assert at.sidebar.slider(key="cfg.frames") is not None
    assert at.session_state["livematch.settings"].paths.catalogue == str(demo_dir)
