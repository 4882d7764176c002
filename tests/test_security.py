"""Security and data safety (docs/security.md): what a visitor of the app may reach, what a destructive action may
delete, and that one bad file never stops a build, nor one torn write loses the corrections after it.

Each test names the fault it injects; docs/security.md's fault table says what each one proves.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from support.apptest import assert_clean, open_app, page_text, use_catalogue
from support.requires import missing
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as hst
from PIL import Image

from engine.errors import CatalogueError, EngineError
from engine.index.corrections import CorrectedFrame, CorrectionStore
from engine.io.access import confine, editing_allowed, served_locally, split_roots
from engine.io.catalogue import load_catalogue
from engine.io.editing import copy_catalogue, removal_plan, remove_product
from engine.io.urlpolicy import StreamError, check_stream_url, parse_patterns

ROOT = Path(__file__).resolve().parents[1]


def _jpeg(path: Path, size: tuple[int, int] = (90, 120), seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, "JPEG")


def _cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})})


# ============================================================================ safe by default: the server
def test_the_app_listens_on_localhost_by_default() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] in ("127.0.0.1", "localhost")
    assert served_locally(config["server"]["address"])


@pytest.mark.parametrize("mode, address, allowed", [
    ("auto", "127.0.0.1", True), ("auto", "localhost", True), ("auto", "::1", True),
    ("auto", "", False), ("auto", "0.0.0.0", False), ("auto", "10.1.2.3", False), ("auto", None, False),
    ("on", "0.0.0.0", True), ("off", "127.0.0.1", False), ("OFF", "", False),
])
def test_editing_follows_the_setting_and_auto_is_off_beyond_localhost(mode, address, allowed) -> None:
    assert editing_allowed(mode, address) is allowed


def test_an_unknown_editing_mode_is_refused_in_one_line() -> None:
    with pytest.raises(EngineError, match="LIVEMATCH_EDITING='maybe'"):
        editing_allowed("maybe", "127.0.0.1")


# ============================================================================ catalogue folders: confined to roots
def test_a_folder_is_resolved_before_it_is_checked_against_the_roots(tmp_path: Path) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "shop").mkdir(parents=True)
    outside.mkdir()
    (allowed / "link").symlink_to(outside)
    assert confine(allowed / "shop", [allowed]) == (allowed / "shop").resolve()
    assert confine(allowed, [allowed]) == allowed.resolve()
    for bad in (outside, allowed / "link", allowed / "shop" / ".." / ".." / "outside", "/usr/share", "/"):
        with pytest.raises(CatalogueError, match="outside the folders this app may open"):
            confine(bad, [allowed])
    with pytest.raises(CatalogueError, match="NUL"):
        confine(f"{allowed}/\x00", [allowed])
    assert split_roots(f"/a{os.pathsep}/b, /c ,") == ["/a", "/b", "/c"]


def test_a_catalogue_folder_outside_the_roots_is_refused_in_the_app(monkeypatch: pytest.MonkeyPatch, demo_dir: Path,
                                                                    engine, tmp_path: Path) -> None:
    """The issue's reproduction: a visitor types a server folder (here a scratch folder with a product in it)."""
    outside = tmp_path / "scratch"
    _jpeg(outside / "a" / "0.jpg")
    (outside / "a" / "notes.txt").write_text("keep me")
    before = sorted(p.name for p in outside.rglob("*"))
    use_catalogue(monkeypatch, demo_dir)
    at = open_app("catalogue")
    for folder in (str(outside), "/usr/share", f"{demo_dir}/../../.."):
        at.text_input(key="cfg.catalogue").set_value(folder).run()
        assert_clean(at)
        errors = [e.value for e in at.error]
        assert any("outside the folders this app may open" in e for e in errors), errors
        assert not [b for b in at.button if b.key == "catalogue.remove"]  # nothing of it is shown, nor removable
        assert "Add product" not in [b.label for b in at.button]
    assert sorted(p.name for p in outside.rglob("*")) == before

    monkeypatch.setenv("LIVEMATCH_CATALOGUE_ROOTS", str(tmp_path))  # the operator lists the folder: now it opens
    at = open_app("catalogue")
    at.text_input(key="cfg.catalogue").set_value(str(outside)).run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert "1 products" in page_text(at) or "**scratch** · 1 products" in page_text(at)


def test_the_evaluate_page_refuses_a_dataset_outside_the_roots(monkeypatch: pytest.MonkeyPatch, demo_dir: Path,
                                                               engine, tmp_path: Path) -> None:
    use_catalogue(monkeypatch, demo_dir)
    copy = copy_catalogue(demo_dir, tmp_path / "elsewhere")
    at = open_app("evaluate")
    at.text_input(key="evaluate.dataset").set_value(str(copy)).run()
    at.button(key="evaluate.run").click().run()
    assert_clean(at)
    assert any("outside the folders this app may open" in e.value for e in at.error)


def test_int8_is_calibrated_on_the_operators_choice_never_on_a_visitors_catalogue(monkeypatch: pytest.MonkeyPatch,
                                                                                   tmp_path: Path) -> None:
    """A visitor who opens another catalogue never makes the server quantise on it: the app's engines take the
    operator's calibration, else the operator's catalogue, else the built-in demo (one int8 model per server)."""
    from engine.config import Settings
    from ui.state import engine_settings

    monkeypatch.delenv("LIVEMATCH_CALIBRATION", raising=False)
    monkeypatch.delenv("LIVEMATCH_CATALOGUE", raising=False)
    monkeypatch.setenv("LIVEMATCH_DEMO_DIR", str(tmp_path / "demo"))
    visitor = Settings.from_env().with_(catalogue=str(tmp_path / "visitors"), precision="int8")
    assert engine_settings(visitor).models.calibration == str(tmp_path / "demo")
    monkeypatch.setenv("LIVEMATCH_CATALOGUE", str(tmp_path / "shop"))
    assert engine_settings(visitor).models.calibration == str(tmp_path / "shop")
    monkeypatch.setenv("LIVEMATCH_CALIBRATION", str(tmp_path / "photos"))
    assert engine_settings(visitor).models.calibration == str(tmp_path / "photos")
    assert engine_settings(visitor).paths.catalogue == str(tmp_path / "visitors")  # the visitor's catalogue is served


# ============================================================================ editing off, and asked once
def test_with_editing_off_nothing_can_be_added_removed_rebuilt_or_trained(monkeypatch: pytest.MonkeyPatch,
                                                                          demo_dir: Path, engine, tmp_path: Path) -> None:
    copy = copy_catalogue(demo_dir, tmp_path / "shop")
    use_catalogue(monkeypatch, copy)
    monkeypatch.setenv("LIVEMATCH_EDITING", "off")
    at = open_app("catalogue")
    labels = [b.label for b in at.button]
    keys = [b.key for b in at.button]
    assert "catalogue.remove" not in keys and "catalogue.rebuild" not in keys
    assert "Add product" not in labels and not any(k and k.startswith("train.") for k in keys)
    assert not any(k and k.startswith("corrections.remove.") for k in keys)
    assert any("Editing is switched off" in i.value for i in at.info)


def test_editing_auto_is_off_when_the_server_listens_beyond_localhost(monkeypatch: pytest.MonkeyPatch,
                                                                      demo_dir: Path, engine, tmp_path: Path) -> None:
    import ui.state

    copy = copy_catalogue(demo_dir, tmp_path / "shop")
    use_catalogue(monkeypatch, copy)
    at = open_app("catalogue")
    assert at.button(key="catalogue.remove")  # on localhost (.streamlit/config.toml), auto is on
    monkeypatch.setattr(ui.state, "bind_address", lambda: "0.0.0.0")
    at = open_app("catalogue")
    assert not [b for b in at.button if b.key == "catalogue.remove"]
    assert any("Editing is switched off" in i.value for i in at.info)


def _listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_removing_a_product_in_the_app_asks_once_and_deletes_only_its_images_and_annotations(
        monkeypatch: pytest.MonkeyPatch, demo_dir: Path, engine, tmp_path: Path) -> None:
    root = copy_catalogue(demo_dir, tmp_path / "shop")
    pid = sorted(load_catalogue(root).products)[1]
    (root / "image" / pid / "notes.txt").write_text("not an image")
    (root / "image" / pid / "sub").mkdir()
    (root / "image" / pid / "sub" / "keep.jpg").write_bytes(b"a sub-folder is not the product's")
    (root / "image_annotation" / pid / "README.md").write_text("not an annotation")
    images = sorted(p.name for p in (root / "image" / pid).glob("*.jpg"))
    others = {k: v for k, v in _listing(root).items() if f"/{pid}/" not in f"/{k}" and k != "products.json"}
    use_catalogue(monkeypatch, root)

    at = open_app("catalogue")
    at.selectbox(key="catalogue.selected").set_value(pid).run()
    at.button(key="catalogue.remove").click().run()  # only asks
    assert_clean(at)
    assert (root / "image" / pid / images[0]).is_file()
    text = page_text(at)
    n_ann = len(list((root / "image_annotation" / pid).glob("*.json")))
    assert f"{len(images)} images and {n_ann} annotation file" in text and "3 other file(s)" in text
    assert f"image/{pid}/{images[0]}" in text and "notes.txt" not in text
    at.button(key="confirm.yes").click().run()
    assert_clean(at)
    assert any(f"Removed {pid}" in s.value for s in at.success), page_text(at)
    assert not [b for b in at.button if b.key == "confirm.yes"]  # the dialog is gone: nothing destructive is left
    assert sorted(p.name for p in (root / "image" / pid).iterdir()) == ["notes.txt", "sub"]
    assert (root / "image" / pid / "sub" / "keep.jpg").is_file()
    assert [p.name for p in (root / "image_annotation" / pid).iterdir()] == ["README.md"]
    assert {k: v for k, v in _listing(root).items() if f"/{pid}/" not in f"/{k}" and k != "products.json"} == others
    assert pid not in load_catalogue(root).products


def test_remove_product_deletes_the_folders_only_when_they_are_empty(tmp_path: Path, demo_dir: Path) -> None:
    root = copy_catalogue(demo_dir, tmp_path / "shop")
    pid = sorted(load_catalogue(root).products)[0]
    plan = removal_plan(root, pid)
    assert plan.kept == () and all(p.suffix == ".jpg" for p in plan.images)
    remove_product(root, pid)
    assert not (root / "image" / pid).exists() and not (root / "image_annotation" / pid).exists()

    plain = tmp_path / "plain"  # a folder per product: the same rule
    _jpeg(plain / "a" / "0.jpg")
    _jpeg(plain / "b" / "0.jpg")
    (plain / "b" / "c.txt").write_text("kept")
    (plain / "b" / "inner").mkdir()
    _jpeg(plain / "b" / "inner" / "1.jpg")
    remove_product(plain, "b")
    assert sorted(p.name for p in (plain / "b").iterdir()) == ["c.txt", "inner"]
    assert (plain / "b" / "inner" / "1.jpg").is_file() and (plain / "a" / "0.jpg").is_file()


def test_remove_product_refuses_a_linked_product_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _jpeg(outside / "0.jpg")
    root = tmp_path / "plain"
    _jpeg(root / "a" / "0.jpg")
    (root / "evil").symlink_to(outside)
    with pytest.raises(CatalogueError, match="is a link"):
        remove_product(root, "evil")
    assert (outside / "0.jpg").is_file()


# ============================================================================ stream addresses
def _fake(table: dict[str, list[str]]):
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]
    return resolve


HOSTS = _fake({"cdn.example.com": ["93.184.216.34"], "rebound.example.com": ["127.0.0.1"],
               "cam.lan": ["192.168.1.9"], "metadata": ["169.254.169.254"], "v6.example.com": ["::ffff:10.0.0.1"]})


@pytest.mark.parametrize("url, allow, local, ok", [
    ("http://127.0.0.1:8000/internal-admin", "", True, True),  # localhost: the visitor is the operator
    ("http://127.0.0.1:8000/internal-admin", "", False, False),  # shared, nothing allowed: nothing opened
    ("https://cdn.example.com/live.m3u8", "https://*", False, True),
    ("https://rebound.example.com/x", "https://*", False, False),  # a public name for a loopback address
    ("http://metadata/latest", "http://*", False, False),  # link-local (cloud metadata)
    ("http://169.254.169.254/latest", "http://*", False, False),
    ("https://v6.example.com/x", "https://*", False, False),  # a private address written as IPv6
    ("rtsp://cam.lan/stream", "rtsp://cam.lan", False, True),  # named explicitly: a private camera is allowed
    ("rtsp://192.168.1.9/stream", "rtsp://192.168.0.0/16", False, True),
    ("rtsp://10.0.0.9/stream", "rtsp://192.168.0.0/16", False, False),
    ("http://cdn.example.com/x", "https://*", False, False),  # scheme not allowed
    ("https://cdn.example.com/x", "https://*.example.com", False, True),
    ("https://cdn.example.org/x", "https://*.example.com", False, False),
    ("https://cdn.example.com:8443/x", "https://cdn.example.com", False, False),  # port not allowed
    ("https://nowhere.invalid/x", "https://*", False, False),  # cannot be resolved
    ("file:///etc/passwd", "", True, False), ("gopher://x/", "", True, False), ("not a url", "", True, False),
    # IPv6 forms that carry an IPv4 address are judged by it (issue 30: Python calls these global)
    ("http://[::127.0.0.1]/x", "http://*", False, False),  # IPv4-compatible
    ("http://[64:ff9b::7f00:1]/x", "http://*", False, False),  # NAT64
    ("http://[64:ff9b::a00:1]/x", "http://*", False, False),  # NAT64 of 10.0.0.1
    ("http://[2002:7f00:1::]/x", "http://*", False, False),  # 6to4
    ("http://[2002:a9fe:a9fe::]/x", "http://*", False, False),  # 6to4 of the metadata address
    ("http://[::ffff:7f00:1]/x", "http://*", False, False),  # IPv4-mapped, hex
    ("http://[64:ff9b::5db8:d822]/x", "http://*", False, True),  # NAT64 of a public address stays allowed
])
def test_stream_addresses_follow_the_policy(url, allow, local, ok) -> None:
    if ok:
        assert check_stream_url(url, allow, local, HOSTS) == url
    else:
        with pytest.raises(StreamError):
            check_stream_url(url, allow, local, HOSTS)


@pytest.mark.parametrize("name", ["127.example.com", "127.0.0.1.nip.io", "127-0-0-1", "0.0.0.0", "10.0.0.1"])
def test_a_name_that_starts_with_127_is_not_served_locally(name) -> None:
    assert not served_locally(name)
    assert served_locally("127.0.0.5") and served_locally("[::1]")


def test_a_name_that_no_pattern_allows_is_not_even_looked_up() -> None:
    asked: list[str] = []
    with pytest.raises(StreamError, match="not an address this server may open"):
        check_stream_url("https://attacker.example.net/x", "https://cdn.example.com", False,
                         lambda h: asked.append(h) or ["93.184.216.34"])
    assert asked == []


def test_a_bad_allow_pattern_is_named() -> None:
    with pytest.raises(StreamError, match="'ftp://x'"):
        parse_patterns("https://ok.example.com, ftp://x")


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Counting.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_shared_app_never_fetches_a_loopback_address_a_visitor_types(monkeypatch: pytest.MonkeyPatch,
                                                                       demo_dir: Path, engine) -> None:
    """The issue's reproduction: a loopback listener must see no request from the app."""
    import ui.state

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Counting.hits = []
    try:
        use_catalogue(monkeypatch, demo_dir)
        monkeypatch.setattr(ui.state, "bind_address", lambda: "0.0.0.0")
        for allow, message in (("", "opens no stream addresses"), ("http://*:*", "loopback, private or link-local")):
            monkeypatch.setenv("LIVEMATCH_STREAM_ALLOW", allow)
            at = open_app()
            at.radio(key="match.mode").set_value("Stream URL").run()
            at.text_input(key="match.stream_url").set_value(
                f"http://127.0.0.1:{server.server_address[1]}/internal-admin/secret?token=1").run()
            at.button(key="match.stream_start").click().run()
            assert_clean(at)
            assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
        assert _Counting.hits == []
    finally:
        server.shutdown()
        server.server_close()


# ============================================================================ one bad file never stops a build
def _hostile_catalogue(root: Path) -> dict[str, str]:
    """Good products beside the issue's bad files; returns {bad file (as reported): why}."""
    for pid in ("good1", "good2", "inf", "big", "deep", "digits", "outside", "nonutf8"):
        _jpeg(root / "image" / pid / "0.jpg", seed=len(pid))
    ann = root / "image_annotation"

    def write(pid: str, text: str) -> None:
        (ann / pid).mkdir(parents=True, exist_ok=True)
        (ann / pid / "0.json").write_text(text, encoding="utf-8")

    write("good1", json.dumps({"annotations": [{"box": [10, 10, 80, 100], "instance_id": 1, "label": "短袖上衣"}]}))
    write("inf", '{"annotations": [{"box": [10, 10, 80, 100], "instance_id": Infinity}]}')
    write("big", '{"annotations": [{"box": [10, 10, ' + "9" * 400 + ', 100], "instance_id": 1}]}')
    write("deep", "[" * 100_000 + "]" * 100_000)
    write("digits", '{"annotations": [{"box": [10, 10, 80, 100], "instance_id": ' + "1" * 5000 + "}]}")
    write("outside", json.dumps({"annotations": [{"box": [500, 500, 800, 800], "instance_id": 1}]}))
    bad_name = os.fsencode(root / "image" / "nonutf8") + b"/\xff\xfe.jpg"
    with open(bad_name, "wb") as f:
        f.write((root / "image" / "good1" / "0.jpg").read_bytes())
    return {"image_annotation/inf/0.json": "Infinity", "image_annotation/big/0.json": "no valid box",
            "image_annotation/deep/0.json": "nested too deeply", "image_annotation/digits/0.json": "digits",
            "image_annotation/outside/0.json": "outside", "image/nonutf8/\\xff\\xfe.jpg": "not UTF-8"}


@pytest.mark.slow
def test_build_index_skips_and_names_each_bad_file_and_exits_0(tmp_path: Path, engine) -> None:
    root = tmp_path / "hostile"
    bad = _hostile_catalogue(root)
    out = _cli("build-index", "--catalogue", str(root), "--index-dir", str(tmp_path / "ix"))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "8 products" in out.stdout  # the good ones, and those whose annotation alone was bad (then detected)
    assert f"warning: {len(bad)} file(s) skipped or partly read" in out.stderr
    for path, why in bad.items():
        line = next((l for l in out.stderr.splitlines() if l.strip().startswith(path)), None)
        assert line is not None and why in line, (path, out.stderr)
    meta = json.loads(next((tmp_path / "ix" / "builds").glob("*/meta.json")).read_text(encoding="utf-8"))
    assert "good1" in meta["products"] and len(meta["problems"]) == len(bad)


def test_the_catalogue_page_lists_the_skipped_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine) -> None:
    root = tmp_path / "hostile"
    bad = _hostile_catalogue(root)
    use_catalogue(monkeypatch, root)
    at = open_app("catalogue")
    assert_clean(at)
    shown = "\n".join(t.value for t in at.text)
    assert f"{len(bad)} file(s) skipped or partly read" in " ".join(e.label for e in at.expander)
    for path in bad:
        assert path in shown, (path, shown)


HOSTILE_JSON = {  # by name: the generated texts are large, their names keep the reports short
    "deep list": lambda: "[" * 50_000, "deep objects": lambda: '{"a": ' * 3000 + "1" + "}" * 3000,
    "6000 digits": lambda: "1" * 6000, "-Infinity": lambda: "-Infinity", "NaN": lambda: "NaN",
    "deep annotations": lambda: '{"annotations": ' + "[" * 5000,
    "1e400": lambda: '{"annotations": [{"box": [1e400, 0, 1, 1]}]}',
    "negative instance": lambda: '{"annotations": [{"box": [0, 0, 10, 10], "instance_id": -1}]}',
    "1e300 instance": lambda: '{"annotations": [{"box": [0, 0, 10, 10], "instance_id": 1e300}]}',
    "box text": lambda: '{"annotations": [{"box": "abcd"}]}',
    "box booleans": lambda: '{"annotations": [{"box": [true, false, 5, 5]}]}',
    "label list": lambda: '{"annotations": [{"box": [0, 0, 10, 10], "label": [[[]]]}]}',
    "lone surrogate": lambda: "\ud800", "annotations object": lambda: '{"annotations": {"box": 1}}', "empty": lambda: "",
    "good": lambda: '{"annotations": [{"box": [5, 5, 60, 100], "instance_id": 1, "label": "x"}]}',
}


@hsettings(max_examples=30, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(names=hst.lists(hst.sampled_from(sorted(HOSTILE_JSON)), min_size=1, max_size=3),
       products=hst.sampled_from(sorted(HOSTILE_JSON)))
def test_hostile_annotations_and_products_json_never_stop_the_reader(tmp_path: Path, names, products) -> None:
    root = tmp_path / "fuzz"
    shutil.rmtree(root, ignore_errors=True)  # hypothesis runs every example in the same tmp_path
    texts = [HOSTILE_JSON[n]() for n in names]
    for i, text in enumerate(texts):
        _jpeg(root / "image" / f"p{i}" / "0.jpg")
        (root / "image_annotation" / f"p{i}").mkdir(parents=True, exist_ok=True)
        (root / "image_annotation" / f"p{i}" / "0.json").write_bytes(text.encode("utf-8", "surrogatepass"))
    (root / "products.json").write_bytes(HOSTILE_JSON[products]().encode("utf-8", "surrogatepass"))
    cat = load_catalogue(root)
    assert sorted(cat.products) == sorted(f"p{i}" for i in range(len(texts)))
    assert all(isinstance(p, str) for p in cat.problems)
    json.dumps(list(cat.problems))  # every problem can be stored in meta.json
    for p in cat.products.values():
        for r in p.regions:
            assert 0 <= r.box[0] < r.box[2] <= 90 and 0 <= r.box[1] < r.box[3] <= 120


# ============================================================================ boxes belong to their image
def test_annotated_boxes_are_scaled_with_a_downscaled_photo_and_a_box_outside_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "large"
    _jpeg(root / "image" / "p" / "0.jpg", size=(3200, 3200))
    _jpeg(root / "image" / "p" / "1.jpg", size=(3200, 1600))
    _jpeg(root / "image" / "p" / "2.jpg", size=(800, 600))
    boxes = {0: [2000, 2000, 2800, 2800], 1: [0, 0, 3200, 1600], 2: [900, 700, 1000, 800]}
    for n, box in boxes.items():
        (root / "image_annotation" / "p").mkdir(parents=True, exist_ok=True)
        (root / "image_annotation" / "p" / f"{n}.json").write_text(
            json.dumps({"annotations": [{"box": box, "instance_id": 1}]}), encoding="utf-8")
    cat = load_catalogue(root)
    regions = {Path(r.image_path).name: r.box for r in cat.products["p"].regions}
    assert regions == {"0.jpg": (1000.0, 1000.0, 1400.0, 1400.0), "1.jpg": (0.0, 0.0, 1600.0, 800.0)}
    assert [p for p in cat.problems if "2.json" in p and "outside the 800x600 image" in p]

    from engine.io.images import read_rgb

    assert read_rgb(root / "image" / "p" / "0.jpg").shape[:2] == (1600, 1600)  # the pixels the box is now in


# ============================================================================ the corrections log
def test_a_torn_last_line_does_not_swallow_the_next_correction(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path)
    first = store.add("p1", "a.mp4", "", CorrectedFrame(3, 0.1, [(0, 0, 1, 1)], np.zeros((1, 4), np.float32)),
                      "k")
    data = store.log.read_bytes()
    store.log.write_bytes(data[: len(data) - 20])  # the last line torn by a crash
    second = store.add("p2", "a.mp4", "", CorrectedFrame(4, 0.2, [(0, 0, 1, 1)], np.zeros((1, 4), np.float32)),
                       "k")
    assert [c.correction_id for c in store.records()] == [second.correction_id]
    assert store.log.read_bytes().count(b"\n") == 1 and first.correction_id not in store.log.read_text()
    assert not (tmp_path / f"{first.correction_id}.npy").exists()  # its vectors were swept as an orphan


@pytest.mark.slow
def test_cli_after_truncating_the_log_the_next_correct_is_listed(engine, demo_dir: Path, tmp_path: Path) -> None:
    cat = load_catalogue(demo_dir)
    clip = next(c for c in cat.clips.values() if c.path and c.truth in cat.products)
    common = ["--catalogue", str(demo_dir), "--index-dir", str(tmp_path / "ix"), "--sample", "3"]
    out = _cli("correct", str(clip.path), "--product", str(clip.truth), "--frames", "0", *common)
    assert out.returncode == 0, out.stderr
    log = tmp_path / "ix" / "corrections" / "log.jsonl"
    log.write_bytes(log.read_bytes()[:-15])  # truncate the last line
    out = _cli("correct", str(clip.path), "--product", str(clip.truth), "--frames", "1", *common)
    assert out.returncode == 0, out.stderr
    new_id = out.stdout.split("\n  ", 1)[1].split()[0]
    listing = _cli("corrections", *common[:4])
    assert listing.returncode == 0 and new_id in listing.stdout, listing.stdout


_KILLED_CORRECT = """
import sys, time
import numpy as np
from engine.index import corrections
real = corrections.atomic_write
calls = []
def slow(path, *a, **k):
    calls.append(path)
    if len(calls) == 5:  # the third frame's vectors: two frames written (vectors, JPEG), the log line not yet
        print("ready", flush=True)
        time.sleep(60)
    return real(path, *a, **k)
corrections.atomic_write = slow
store = corrections.CorrectionStore(sys.argv[1])
v = np.ones((1, 4), np.float32)
store.add_frames("p1", "a.mp4", "", [corrections.CorrectedFrame(i, i * 0.5, [(0, 0, 5, 5)], v, b"jpeg")
                                     for i in range(5)], "k")
"""


def test_a_killed_correct_stores_no_frame_and_leaves_no_orphans(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "corrections")
    kept = store.add("p0", "b.mp4", "", CorrectedFrame(0, 0.0, [(0, 0, 5, 5)], np.ones((1, 4), np.float32)), "k")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_CORRECT, str(store.folder)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert [c.correction_id for c in store.records()] == [kept.correction_id]  # none of the 5 frames: all or none
    assert len(list(store.folder.glob("c*.npy"))) > 1  # the killed process left files behind...
    store.load("k", {"p0": {}}, 4, lambda v: v)  # ...which the next opening of the store sweeps
    assert sorted(p.name for p in store.folder.iterdir() if p.name not in ("log.jsonl", ".lock")) == [
        f"{kept.correction_id}.npy"]


def test_clear_removes_every_file_orphans_included(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "corrections")
    store.add("p0", "b.mp4", "", CorrectedFrame(0, 0.0, [(0, 0, 5, 5)], np.ones((1, 4), np.float32), jpeg=b"jpeg"),
              "k")
    (store.folder / "c20990101000000-abcdef.npy").write_bytes(b"orphan")
    (store.folder / ".c20990101000000-abcdef.npy-x1.tmp").write_bytes(b"half written")
    (store.folder / "notes.txt").write_text("not the store's")
    assert len(store.remove(["all"])) == 1
    assert store.records() == []
    assert sorted(p.name for p in store.folder.iterdir()) == [".lock", "notes.txt"]


# ============================================================================ Milvus (needs requirements-scale.txt)
def _need_milvus() -> None:
    if importlib.util.find_spec("pymilvus") is None:
        missing("pymilvus", "LIVEMATCH_REQUIRE_SCALE", "pip install -r requirements-scale.txt")


def _small_index(index_dir: Path, uri: str, model_key: str = "m"):
    from engine.index.protocol import IndexSpec
    from engine.index.store import write_index
    from engine.types import RegionRef

    rng = np.random.default_rng(0)
    v = rng.normal(size=(12, 8)).astype(np.float32)
    items = [RegionRef(f"p{i % 3}", f"/x/{i}.jpg", (0, 0, 1, 1), "", 0, "whole") for i in range(12)]
    return write_index(index_dir, IndexSpec(v, items, {f"p{k}": {"name": f"P{k}"} for k in range(3)}, model_key,
                       backend="milvus", uri=uri))


def test_a_corrupt_milvus_lite_store_is_named_with_the_command_that_rebuilds_it(tmp_path: Path) -> None:
    _need_milvus()
    from engine.errors import IndexUnreachableError
    from engine.index import milvus

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(3000))  # the whole store is garbage
    with pytest.raises(IndexUnreachableError, match="is corrupt") as e:
        milvus.connect(str(garbage))
    assert f"mv {garbage} {garbage}.corrupt && python -m engine build-index" in str(e.value)
    assert "one process at a time" not in str(e.value) and "\n" not in str(e.value)



@pytest.mark.slow
def test_a_damaged_or_corrupt_milvus_lite_store_is_said_never_a_silent_empty_answer(tmp_path: Path, demo_dir: Path,
                                                                                    engine) -> None:
    """The issue's reproduction: build-index and match said "cannot reach Milvus" or "one process at a time"; and a
    damaged collection file made Milvus Lite fall back to an empty state, so match ranked nothing, in silence."""
    _need_milvus()
    store = tmp_path / "m.db"
    env = {"LIVEMATCH_INDEX_BACKEND": "milvus", "LIVEMATCH_MILVUS_URI": str(store)}
    common = ["--catalogue", str(demo_dir), "--index-dir", str(tmp_path / "ix")]
    clip = next(c.path for c in load_catalogue(demo_dir).clips.values() if c.path)
    assert _cli("build-index", *common, env=env).returncode == 0
    for manifest in store.glob("collections/*/manifest.json"):
        manifest.write_text("{{{")  # a collection's files damaged (a full disk, a copy cut short)
    out = _cli("match", str(clip), "--frames", "2", *common, env=env)
    assert out.returncode == 0 and "  1. " in out.stdout, (out.stdout, out.stderr)  # rebuilt, then ranked
    assert "the store is damaged; rebuilding the index" in out.stderr

    shutil.rmtree(store)
    store.write_bytes(os.urandom(3000))  # the whole store is garbage
    for args in (("match", str(clip), "--frames", "2"), ("build-index",)):
        out = _cli(*args, *common, env=env)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: the Milvus Lite store {store} is corrupt") and "build-index" in last, last
    os.rename(store, f"{store}.corrupt")  # what the message says to do
    assert _cli("build-index", *common, env=env).returncode == 0


def test_a_milvus_lite_store_held_by_another_process_says_so(tmp_path: Path) -> None:
    _need_milvus()
    from engine.errors import IndexUnreachableError
    from engine.index import milvus

    store = tmp_path / "held.db"
    code = ("import sys, time\nfrom pymilvus import MilvusClient\nMilvusClient(uri=sys.argv[1])\n"
            "print('held', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(IndexUnreachableError, match="another process has it open"):
            milvus.connect(str(store))
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_killed_milvus_build_leaves_a_collection_the_next_build_drops(tmp_path: Path) -> None:
    _need_milvus()
    from engine.index import milvus

    uri, index_dir = str(tmp_path / "m.db"), tmp_path / "ix"
    first = _small_index(index_dir, uri)
    stale = milvus.MilvusTarget(uri, milvus.collection_name(index_dir, "m", ".building-k1ll3d00"))
    milvus.create_collection(stale, 8, "m")  # what a build-index killed while writing leaves
    other = milvus.MilvusTarget(uri, milvus.collection_name(tmp_path / "other", "m", ".building-k1ll3d00"))
    milvus.create_collection(other, 8, "m")  # another index folder's: not this build's to drop
    second = _small_index(index_dir, uri)
    names = set(milvus.connect(uri).list_collections())
    assert stale.collection not in names and other.collection in names
    assert milvus.read_target(second / "milvus.json").collection in names  # the serving build is kept
    assert milvus.read_target(first / "milvus.json").collection in names  # and the previous one (kept for rollback)


def test_a_changed_milvus_uri_is_noticed_said_and_built_there(tmp_path: Path, demo_dir: Path, settings, engine,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    _need_milvus()
    from engine import workspace
    from engine.index import milvus
    from engine.index.store import current_build, moved_reason

    cat = load_catalogue(demo_dir)
    old = settings.with_(index_backend="milvus", milvus_uri=str(tmp_path / "a.db"), index_dir=str(tmp_path / "ix"))
    workspace.build_index(old, cat)
    assert moved_reason(tmp_path / "ix", old.index) == ""
    new = old.with_(milvus_uri=str(tmp_path / "b.db"))
    with caplog.at_level("WARNING"):
        e = workspace.ready_engine(new, cat)
    assert any("now names" in r.getMessage() and "b.db" in r.getMessage() for r in caplog.records)
    assert milvus.read_target(current_build(tmp_path / "ix") / "milvus.json").uri == str(tmp_path / "b.db")
    assert len(e.index.products) == len(cat.products)
    dead = old.with_(milvus_uri="http://127.0.0.1:1")  # a dead server: said, never the old store in silence
    with pytest.raises(EngineError, match="cannot reach Milvus at http://127.0.0.1:1"):
        workspace.ready_engine(dead, cat)


def test_a_killed_fetch_leaves_no_folder_for_ever(tmp_path: Path) -> None:
    """Issue 30: a killed `timeline` of a server without byte ranges left /tmp/livematch-fetch-* behind. Folders are
    named by their process and swept once it is gone; a running process's folder is kept."""
    from engine.io.fetch import FETCH_PREFIX, sweep_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f"{FETCH_PREFIX}{dead.pid}-abc"
    mine = tmp_path / f"{FETCH_PREFIX}{os.getpid()}-def"
    other = tmp_path / "unrelated"
    for d in (gone, mine, other):
        (d).mkdir()
        (d / "clip.mp4").write_bytes(b"x")
    assert sweep_stale(tmp_path) == [gone]
    assert not gone.exists() and mine.exists() and other.exists()


def test_reports_of_datasets_outside_the_roots_are_shown_nowhere(monkeypatch: pytest.MonkeyPatch, demo_dir: Path,
                                                                 tmp_path: Path) -> None:
    """Issue 30: a report that an operator's `evaluate --dataset /secret/shop` wrote in the same home was listed on
    Inspect with its product names; on Evaluate, a typed folder outside the roots showed its metrics. One check
    (ui.state.may_see) now decides for every page."""
    from support.apptest import plotly_figures

    from engine.eval.evaluate import metrics, save_report
    from engine.types import EvalReport

    home = tmp_path / "home"
    monkeypatch.setenv("LIVEMATCH_HOME", str(home))
    use_catalogue(monkeypatch, demo_dir)
    secret = tmp_path / "secret" / "shop"
    secret.mkdir(parents=True)
    report = EvalReport(str(secret), {}, metrics([]), (), created_at="2026-12-07T20:00:00")
    save_report(report, home / "reports" / "shop.json")
    at = open_app("inspect")
    assert any("No evaluation report yet" in i.value for i in at.info)  # not listed
    assert "secret" not in page_text(at)

    at = open_app("evaluate")
    at.text_input(key="evaluate.dataset").set_value(str(secret)).run()
    assert_clean(at)
    assert len(at.error) == 1 and "outside the folders this app may open" in at.error[0].value
    assert not plotly_figures(at) and not at.metric

    save_report(report, home / "reports" / f"{demo_dir.resolve().name}.json")  # an allowed name, a secret dataset
    at = open_app("evaluate")
    assert_clean(at)
    assert any("outside the folders this app may open" in e.value for e in at.error)
    assert not plotly_figures(at) and not at.metric


def test_an_unreadable_annotation_folder_costs_its_files_not_the_product(monkeypatch: pytest.MonkeyPatch,
                                                                        demo_dir: Path, tmp_path: Path) -> None:
    """Issue 30: an unreadable image_annotation/<id> folder dropped the whole product; the docs promise only that
    file is lost. As root a chmod 000 is not enforced, so the folder's refusal is injected (and, as any other user,
    made real with chmod)."""
    root = copy_catalogue(demo_dir, tmp_path / "shop")
    pid = sorted(p.name for p in (root / "image").iterdir())[0]
    folder = root / "image_annotation" / pid
    real_is_file = Path.is_file

    def refused(self: Path) -> bool:
        if folder in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", refused)
    folder.chmod(0)
    try:
        catalogue = load_catalogue(root)
    finally:
        folder.chmod(0o755)
    product = catalogue.products[pid]  # kept, with its images; its regions will be detected
    assert product.images and not product.regions
    assert any(f"image_annotation/{pid}/" in p and "unreadable" in p for p in catalogue.problems)
    assert len(catalogue.products) == len(load_catalogue(demo_dir).products)


def test_every_problem_can_be_seen_and_the_app_says_how(monkeypatch: pytest.MonkeyPatch, demo_dir: Path,
                                                         tmp_path: Path) -> None:
    """Issue 30: the Catalogue page listed 200 of 5005 problems and sent the reader to build-index, which printed
    10. Now build-index --all-problems prints every one, and the page names that command."""
    from engine.cli import build_parser
    from engine.cli.catalogue import problem_report
    from engine.io.catalogue import ALL_PROBLEMS

    root = copy_catalogue(demo_dir, tmp_path / "shop")
    pid = sorted(p.name for p in (root / "image").iterdir())[0]
    for i in range(230):  # 230 names that are not UTF-8: one problem each
        (root / "image" / pid).joinpath(os.fsdecode(b"bad\xff%d.jpg" % i)).write_bytes(b"x")
    problems = load_catalogue(root).problems
    assert len(problems) >= 230
    assert len(problem_report(problems, len(problems))) == len(problems) + 1  # the count line, then each
    short = problem_report(problems)
    assert len(short) == 12 and ALL_PROBLEMS in short[-1]
    assert build_parser().parse_args(["build-index", "--all-problems"]).all_problems
    use_catalogue(monkeypatch, root)
    monkeypatch.setenv("LIVEMATCH_HOME", str(tmp_path / "home"))
    at = open_app("catalogue")
    assert any(ALL_PROBLEMS in c.value and f"prints all {len(problems)}" in c.value for c in at.caption)


def test_an_upload_copy_whose_browser_left_is_swept(tmp_path: Path) -> None:
    """Issue 30: the app's timeline upload folder outlived the browser session. A copy is removed when its run
    ends; one that no run touched for UPLOAD_IDLE_S (its browser left mid-run) is swept when the next run starts,
    as is one whose process is gone."""
    import time as _time

    from engine.io.fetch import sweep_stale
    from ui.timeline import UPLOAD_IDLE_S, UPLOAD_PREFIX

    idle = tmp_path / f"{UPLOAD_PREFIX}{os.getpid()}-idle"
    busy = tmp_path / f"{UPLOAD_PREFIX}{os.getpid()}-busy"
    for d in (idle, busy):
        d.mkdir()
        (d / "clip.mp4").write_bytes(b"x")
    old = _time.time() - UPLOAD_IDLE_S - 60
    os.utime(idle, (old, old))
    assert sweep_stale(tmp_path, UPLOAD_PREFIX, UPLOAD_IDLE_S) == [idle]
    assert busy.exists() and not idle.exists()
    import types

    from ui.timeline import TimelineSession

    ended = TimelineSession("sha", "clip.mp4", types.SimpleNamespace(ended=True, close=lambda: None), busy)
    assert not ended.running
    ended.release_upload()  # what the page does once the run ends
    assert not busy.exists() and ended.folder is None
