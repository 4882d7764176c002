"""Scale-out: the Milvus index backend (Milvus Lite here) and catalogue embedding on Ray (a local Ray, 2 CPUs).

CI installs requirements-scale.txt and sets LIVEMATCH_REQUIRE_SCALE=1, so none of these may skip there."""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import EngineError, IndexFileError
from engine.index.incremental import ProductUpdate, update_index
from engine.index.protocol import IndexSpec
from engine.index.store import ProductIndex, current_build, write_index
from engine.types import RegionRef
from support.faults import crashing_first_chunk
from support.requires import missing


def _need(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        missing(module, "LIVEMATCH_REQUIRE_SCALE", "pip install -r requirements-scale.txt")


def _catalogue(n_products: int = 40, per: int = 3, dim: int = 32, seed: int = 0):
    """Products as clusters of unit vectors; every product in shop s0, s1 or s2, regions alternately top/dress."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_products, dim)).astype(np.float32)
    v = np.repeat(centres, per, axis=0) + 0.3 * rng.standard_normal((n_products * per, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    items = [RegionRef(f"p{i // per}", f"img{i}.jpg", (0, 0, 10, 10), "top" if i % 2 else "dress", 0, "annotation")
             for i in range(len(v))]
    products = {f"p{k}": {"name": f"P{k}", "shop": f"s{k % 3}"} for k in range(n_products)}
    return v, items, products, centres


@pytest.fixture()
def milvus_uri(tmp_path):
    _need("pymilvus")
    return str(tmp_path / "milvus.db")


def test_milvus_round_trip_same_top1_as_annoy_and_exact(tmp_path, milvus_uri):
    v, items, products, centres = _catalogue()
    write_index(tmp_path / "mv", IndexSpec(v, items, products, "m", backend="milvus", uri=milvus_uri))
    write_index(tmp_path / "an", IndexSpec(v, items, products, "m", backend="annoy"))
    mv, an = ProductIndex.load(tmp_path / "mv", "m"), ProductIndex.load(tmp_path / "an", "m")
    assert mv.backend == "milvus" and len(mv) == len(items)
    queries = centres + 0.5 * np.random.default_rng(1).standard_normal(centres.shape).astype(np.float32)
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        exact = int(np.argmax(v @ q))
        top_m, top_a = mv.search(q, 5)[0], an.search(q, 5)[0]
        assert top_m[0] == top_a[0] == exact
        assert abs(top_m[1] - float(v[exact] @ q)) < 1e-4  # cosine, as Annoy answers
    sims = mv.product_similarities(queries[:1], ["p0"])["p0"][0]  # exact re-ranking from the local vectors.npy
    assert np.allclose(sims, an.product_similarities(queries[:1], ["p0"])["p0"][0])


def test_milvus_filtered_search_by_shop_and_category(tmp_path, milvus_uri):
    v, items, products, centres = _catalogue()
    write_index(tmp_path / "mv", IndexSpec(v, items, products, "m", backend="milvus", uri=milvus_uri))
    mv = ProductIndex.load(tmp_path / "mv", "m")
    q = centres[4] / np.linalg.norm(centres[4])  # p4 is in shop s1
    assert mv.items[mv.search(q, 1)[0][0]].product_id == "p4"
    hits = mv.search(q, 10, shop="s2")
    assert len(hits) == 10 and all(products[mv.items[i].product_id]["shop"] == "s2" for i, _ in hits)
    assert all(mv.items[i].category == "top" for i, _ in mv.search(q, 10, category="top"))
    assert mv.search(q, 5, shop="no-such-shop") == []
    an_dir = tmp_path / "an"  # the other backends filter by an exact search over the shop's regions
    write_index(an_dir, IndexSpec(v, items, products, "m"))
    exact = ProductIndex.load(an_dir, "m").search(q, 10, shop="s2")
    assert [i for i, _ in exact] == [i for i, _ in hits]
    assert np.allclose([s for _, s in exact], [s for _, s in hits], atol=1e-4)


def test_milvus_incremental_add_and_remove_keeps_other_rows(tmp_path, milvus_uri):
    from engine.index import milvus

    v, items, products, centres = _catalogue()
    first = write_index(tmp_path / "mv", IndexSpec(v, items, products, "m", backend="milvus", uri=milvus_uri))
    target = milvus.read_target(first / "milvus.json")
    new = np.random.default_rng(5).standard_normal((2, 32)).astype(np.float32)
    update = ProductUpdate(new, [RegionRef("pnew", f"new{i}.jpg", (0, 0, 5, 5), "top", 0, "annotation") for i in range(2)],
                           {"pnew": {"name": "New", "shop": "s9"}}, removed=("p0",))
    summary = update_index(tmp_path / "mv", update, "m")
    assert (summary.upserted, summary.deleted) == (2, 3)
    mv = ProductIndex.load(tmp_path / "mv", "m")
    assert milvus.read_target(current_build(tmp_path / "mv") / "milvus.json") == target  # the same collection
    client = milvus.connect(milvus_uri)
    assert client.query(target.collection, filter='product == "pnew"', output_fields=["id"])
    assert client.query(target.collection, filter='product == "p0"', output_fields=["id"]) == []
    assert client.get_collection_stats(target.collection)["row_count"] == len(items) - 3 + 2
    assert mv.items[mv.search(new[0] / np.linalg.norm(new[0]), 1, shop="s9")[0][0]].product_id == "pnew"
    q0 = centres[0] / np.linalg.norm(centres[0])
    assert all(mv.items[i].product_id != "p0" for i, _ in mv.search(q0, 20))
    assert "p0" not in mv.products and "pnew" in mv.products and len(mv) == len(items) - 3 + 2
    assert mv.items[mv.search(centres[7] / np.linalg.norm(centres[7]), 1)[0][0]].product_id == "p7"  # untouched


def test_milvus_failed_build_serves_nothing_partial_and_old_collections_are_dropped(tmp_path, milvus_uri, monkeypatch):
    from engine.index import milvus

    v, items, products, _ = _catalogue()
    client = milvus.connect(milvus_uri)
    for _ in range(3):
        write_index(tmp_path / "mv", IndexSpec(v, items, products, "m", backend="milvus", uri=milvus_uri))
    kept = sorted(b for b in (tmp_path / "mv" / "builds").iterdir() if not b.name.startswith("."))
    assert len(kept) == 2  # the current build and the one before it; the first one's collection is dropped
    assert sorted(client.list_collections()) == sorted(milvus.read_target(b / "milvus.json").collection for b in kept)
    serving = current_build(tmp_path / "mv")

    def half_written(target, rows):
        client.insert(target.collection, rows[:10])
        raise IndexFileError("writing to Milvus failed: simulated")

    monkeypatch.setattr(milvus, "upsert", half_written)
    with pytest.raises(IndexFileError, match="simulated"):
        write_index(tmp_path / "mv", IndexSpec(v, items, products, "m", backend="milvus", uri=milvus_uri))
    assert current_build(tmp_path / "mv") == serving and len(ProductIndex.load(tmp_path / "mv", "m")) == len(items)
    assert len(client.list_collections()) == 2  # the half-written collection was dropped


def test_milvus_refuses_other_model_other_dimension_and_missing_collection(tmp_path, milvus_uri):
    from engine.index import milvus

    v, items, products, _ = _catalogue()
    build = write_index(tmp_path / "mv", IndexSpec(v, items, products, "model-a", backend="milvus", uri=milvus_uri))
    with pytest.raises(IndexFileError, match="built with 'model-a'"):
        ProductIndex.load(tmp_path / "mv", "model-b")
    target = milvus.read_target(build / "milvus.json")
    milvus.create_collection(target, 16, "model-a")  # the same name, now 16-d
    with pytest.raises(IndexFileError, match="dimension 16, expected 32"):
        ProductIndex.load(tmp_path / "mv", "model-a")
    milvus.drop(target)
    with pytest.raises(IndexFileError, match="missing: rebuild"):
        ProductIndex.load(tmp_path / "mv", "model-a")


def test_milvus_unreachable_server_is_a_quick_one_line_error(tmp_path, milvus_uri):
    v, items, products, _ = _catalogue()
    write_index(tmp_path / "mv", IndexSpec(v, items, products, "m", backend="milvus", uri=milvus_uri))
    t0 = time.perf_counter()
    with pytest.raises(IndexFileError) as e:
        write_index(tmp_path / "mv", IndexSpec(v, items, products, "m", backend="milvus", uri="http://127.0.0.1:1"))
    assert time.perf_counter() - t0 < 15
    assert "cannot reach Milvus at http://127.0.0.1:1" in str(e.value) and "\n" not in str(e.value)
    assert len(ProductIndex.load(tmp_path / "mv", "m")) == len(items)  # the previous build still serves
    assert [p.name for p in (tmp_path / "mv" / "builds").iterdir() if not p.name.startswith(".")] == \
        [current_build(tmp_path / "mv").name]


def test_cli_prints_unreachable_milvus_as_error_exit_2(tmp_path, demo_dir):
    _need("pymilvus")
    env = {**os.environ, "LIVEMATCH_INDEX_BACKEND": "milvus", "LIVEMATCH_MILVUS_URI": "http://127.0.0.1:1"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "engine", "build-index", "--catalogue", str(demo_dir), "--index-dir",
                          str(tmp_path / "ix")], env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == ["error: cannot reach Milvus at http://127.0.0.1:1: "
                                               + out.stderr.split(": ", 2)[-1].strip()]
    assert time.perf_counter() - t0 < 60 and not (tmp_path / "ix" / "CURRENT").exists()


def test_adding_and_removing_a_product_updates_milvus_rows_without_a_rebuild(tmp_path, demo_dir, settings):
    _need("pymilvus")
    import cv2

    from engine import workspace
    from engine.index import milvus
    from engine.io.catalogue import load_catalogue
    from engine.io.editing import add_product, copy_catalogue

    root = copy_catalogue(demo_dir, tmp_path / "cat")
    s = settings.with_(index_backend="milvus", milvus_uri=str(tmp_path / "m.db"), index_dir=str(tmp_path / "ix"))
    workspace.build_index(s, load_catalogue(root))
    first = current_build(tmp_path / "ix")
    target = milvus.read_target(first / "milvus.json")
    image = sorted((Path(root) / "image").glob("*/0.jpg"))[0]
    h, w = cv2.imread(str(image)).shape[:2]
    add_product(root, "777", "Added", "", [("a.jpg", image.read_bytes())], [(0, 0, w, h)])
    engine = workspace.update_index(s, load_catalogue(root), ["777"])
    assert engine.index.build == current_build(tmp_path / "ix") != first and engine.index.meta.get("incremental")
    assert milvus.read_target(engine.index.build / "milvus.json") == target  # the same collection: no rebuild
    assert "777" in engine.index.products
    rows = milvus.connect(target.uri).query(target.collection, filter='product == "777"', output_fields=["id"])
    assert len(rows) == 1
    vec = engine.index.vectors[rows[0]["id"]]
    assert engine.index.items[engine.index.search(np.asarray(vec), 1)[0][0]].product_id == "777"
    engine = workspace.update_index(s, load_catalogue(root), [], removed=["777"])
    assert "777" not in engine.index.products
    assert milvus.connect(target.uri).query(target.collection, filter='product == "777"', output_fields=["id"]) == []
    # an earlier update that failed (the catalogue was edited, the index not): the next update reconciles both ways
    from engine.io.editing import remove_product

    gone = sorted(engine.index.products)[0]
    remove_product(root, gone)
    engine = workspace.update_index(s, load_catalogue(root), [])
    assert gone not in engine.index.products and "777" in engine.index.products
    assert milvus.connect(target.uri).query(target.collection, filter=f'product == "{gone}"', output_fields=["id"]) == []


def test_a_bad_milvus_timeout_is_a_one_line_error_when_used(monkeypatch, tmp_path):
    _need("pymilvus")
    from engine.index import milvus

    monkeypatch.setenv("LIVEMATCH_MILVUS_TIMEOUT", "10s")
    with pytest.raises(IndexFileError, match="not a number of seconds"):
        milvus.connect(str(tmp_path / "new.db"))


@pytest.mark.slow
@pytest.mark.parametrize("backend, shops", [("annoy", ("b",)), ("milvus", ("a",))])
def test_cli_match_searches_only_one_shops_products(tmp_path, demo_dir, backend, shops):
    import json

    from engine.io.editing import copy_catalogue

    if backend == "milvus":
        _need("pymilvus")
    root = copy_catalogue(demo_dir, tmp_path / "cat")
    ids = sorted(json.loads((Path(root) / "demo.json").read_text())["products"])
    shop_of = {pid: "ab"[i % 2] for i, pid in enumerate(ids)}
    (Path(root) / "products.json").write_text(json.dumps({p: {"name": p, "shop": s} for p, s in shop_of.items()}))
    env = {**os.environ, "LIVEMATCH_INDEX_BACKEND": backend, "LIVEMATCH_MILVUS_URI": str(tmp_path / "m.db")}
    for shop in shops:
        out = subprocess.run([sys.executable, "-m", "engine", "match", str(Path(root) / "video" / f"{ids[0]}.mp4"),
                              "--catalogue", str(root), "--frames", "3", "--shop", shop, "--json", str(tmp_path / "r.json")],
                             env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        ranking = [r["product_id"] for r in json.loads((tmp_path / "r.json").read_text())["ranking"]]
        assert ranking and all(shop_of[p] == shop for p in ranking)
        assert (ranking[0] == ids[0]) == (shop == "a")  # the clip's product is in shop a


# ------------------------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for every Ray test of this module: starting Ray takes seconds."""
    ray = _need("ray")
    from engine.index.ray_build import start_ray

    started = start_ray("local", num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def plain_regions(demo_dir, settings, tmp_path_factory):
    """The small demo embedded the plain way, into a fresh cache."""
    from engine.index.cache import EmbeddingCache
    from engine.io.catalogue import load_catalogue
    from engine.pipeline.catalogue import catalogue_regions
    from engine.pipeline.engine import Engine

    catalogue = load_catalogue(demo_dir)
    return catalogue, catalogue_regions(Engine(settings), catalogue, cache=EmbeddingCache(tmp_path_factory.mktemp("c")))


def _embedder(settings):
    """The embedding function Engine.build_index hands the Ray workers."""
    from engine.pipeline.engine import chunk_embedder

    return functools.partial(chunk_embedder, settings)


def _same(a, b) -> None:
    (va, ia, _), (vb, ib, _) = a, b
    assert ia == ib and va.shape == vb.shape and len(ia) > 0
    cos = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    assert cos.min() >= 0.999


@pytest.mark.slow
def test_ray_build_equals_plain_build_and_reuses_the_cache(local_ray, plain_regions, settings, tmp_path, monkeypatch):
    from engine.index import ray_build
    from engine.index.cache import EmbeddingCache

    catalogue, plain = plain_regions
    monkeypatch.setattr(ray_build, "CHUNK", 4)  # 15 images: 4 chunks over 2 workers
    cache = EmbeddingCache(tmp_path / "cache")
    _same(ray_build.ray_catalogue_regions(_embedder(settings), catalogue, "local", 2, cache=cache), plain)
    assert cache.misses == catalogue.n_images and cache.hits == 0
    again = EmbeddingCache(tmp_path / "cache")  # a rerun embeds nothing: every image is in the shared cache
    _same(ray_build.ray_catalogue_regions(_embedder(settings), catalogue, "local", 2, cache=again), plain)
    assert again.hits == catalogue.n_images and again.misses == 0


@pytest.mark.slow
def test_more_ray_workers_than_cpus_share_them(local_ray, plain_regions, settings, tmp_path, monkeypatch):
    """3 workers on a 2-CPU Ray: each gets a share of a CPU, instead of one waiting forever to be placed."""
    from engine.index import ray_build
    from engine.index.cache import EmbeddingCache

    catalogue, plain = plain_regions
    monkeypatch.setattr(ray_build, "CHUNK", 4)
    monkeypatch.setattr(ray_build, "CHUNK_TIMEOUT_S", 180.0)  # a regression fails here instead of hanging
    _same(ray_build.ray_catalogue_regions(_embedder(settings), catalogue, "local", 3, cache=EmbeddingCache(tmp_path / "c")),
          plain)


@pytest.mark.slow
def test_ray_worker_killed_midway_is_retried(local_ray, plain_regions, settings, tmp_path, monkeypatch):
    from engine.index import ray_build
    from engine.index.cache import EmbeddingCache

    catalogue, plain = plain_regions
    marker = tmp_path / "crashed"
    build = crashing_first_chunk(_embedder(settings), str(marker))  # the first chunk's worker calls os._exit(1)
    monkeypatch.setattr(ray_build, "CHUNK", 8)
    _same(ray_build.ray_catalogue_regions(build, catalogue, "local", 2, cache=EmbeddingCache(tmp_path / "c")), plain)
    assert marker.exists()


@pytest.mark.slow
def test_failed_ray_build_leaves_the_previous_index_serving(local_ray, plain_regions, settings, tmp_path, monkeypatch):
    from engine.index import ray_build
    from engine.pipeline import engine as pipeline_engine
    from engine.pipeline.engine import Engine

    catalogue, (v, items, _) = plain_regions
    write_index(tmp_path / "ix", IndexSpec(v, items, {it.product_id: {} for it in items}, "previous"))
    before = current_build(tmp_path / "ix")
    monkeypatch.setattr(pipeline_engine, "chunk_embedder",  # what Engine.build_index hands the Ray workers
                        crashing_first_chunk(pipeline_engine.chunk_embedder, str(tmp_path / "crashed")))
    monkeypatch.setattr(ray_build, "RETRIES", 0)  # no restart: the build fails
    with pytest.raises(EngineError, match="Ray worker failed"):
        Engine(settings).build_index(catalogue, tmp_path / "ix", ray_address="local", ray_workers=2)
    assert current_build(tmp_path / "ix") == before
    assert len(ProductIndex.load(tmp_path / "ix", "previous")) == len(items)


# ------------------------------------------------------------------------------------------------ the app
def test_app_shows_an_unreachable_milvus_as_one_line_and_offers_the_shop_filter(monkeypatch, demo_dir):
    _need("pymilvus")
    from support.apptest import assert_clean, open_app, use_catalogue

    from ui.text import md

    use_catalogue(monkeypatch, demo_dir)
    monkeypatch.setenv("LIVEMATCH_INDEX_BACKEND", "milvus")
    monkeypatch.setenv("LIVEMATCH_MILVUS_URI", "http://127.0.0.1:1")
    at = open_app("catalogue")
    at.button(key="catalogue.rebuild").click().run()  # building the index reaches for the server
    assert_clean(at)
    errors = [str(e.value) for e in at.error]
    shown = md("cannot reach Milvus at http://127.0.0.1:1")  # the address shown as text, never a link
    assert any(e.startswith(shown) and "\n" not in e for e in errors), errors
    at.sidebar.text_input(key="cfg.shop").set_value(" shop-2 ").run()
    assert at.session_state["livematch.settings"].search.shop == "shop-2"


def test_removing_a_product_in_the_app_deletes_only_its_milvus_rows(monkeypatch, demo_dir, tmp_path):
    _need("pymilvus")
    from support.apptest import assert_clean, open_app, use_catalogue

    from engine.index import milvus
    from engine.index.store import read_summary
    from engine.io.catalogue import load_catalogue
    from engine.io.editing import copy_catalogue

    root = copy_catalogue(demo_dir, tmp_path / "shop")
    use_catalogue(monkeypatch, root)
    monkeypatch.setenv("LIVEMATCH_INDEX_BACKEND", "milvus")
    monkeypatch.setenv("LIVEMATCH_MILVUS_URI", str(tmp_path / "m.db"))
    monkeypatch.setenv("LIVEMATCH_INDEX_DIR", str(tmp_path / "ix"))
    at = open_app("catalogue")
    at.button(key="catalogue.rebuild").click().run()
    first = read_summary(tmp_path / "ix")
    pid = sorted(load_catalogue(root).products)[1]
    at.selectbox(key="catalogue.selected").set_value(pid).run()
    at.button(key="catalogue.remove").click().run()  # asks first (tests/test_security.py)
    at.button(key="confirm.yes").click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert pid not in load_catalogue(root).products and f"Removed {pid}" in at.success[0].value
    now = read_summary(tmp_path / "ix")
    assert now.build != first.build and now.n_products == first.n_products - 1
    target = milvus.read_target(tmp_path / "ix" / "builds" / now.build / "milvus.json")
    assert target == milvus.read_target(tmp_path / "ix" / "builds" / first.build / "milvus.json")  # no rebuild
    client = milvus.connect(target.uri)
    assert client.query(target.collection, filter=f'product == "{pid}"', output_fields=["id"]) == []
    assert client.get_collection_stats(target.collection)["row_count"] == now.n_items


def test_remove_product_refuses_an_unreadable_products_json_and_keeps_the_product(tmp_path, demo_dir):
    from engine.errors import CatalogueError
    from engine.io.catalogue import load_catalogue
    from engine.io.editing import copy_catalogue, remove_product

    root = copy_catalogue(demo_dir, tmp_path / "cat")
    pid = sorted(load_catalogue(root).products)[0]
    (Path(root) / "products.json").write_text("{broken")
    with pytest.raises(CatalogueError, match="products.json is unreadable"):
        remove_product(root, pid)
    assert (Path(root) / "image" / pid).is_dir() and (Path(root) / "image_annotation" / pid).is_dir()
    (Path(root) / "products.json").unlink()
    remove_product(root, pid)
    assert pid not in load_catalogue(root).products and not (Path(root) / "image_annotation" / pid).exists()
    with pytest.raises(CatalogueError, match="no product"):
        remove_product(root, pid)


def test_cli_unreachable_ray_cluster_is_one_line_exit_2(tmp_path, demo_dir):
    _need("ray")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "engine", "build-index", "--ray", "127.0.0.1:1", "--catalogue",
                          str(demo_dir), "--index-dir", str(tmp_path / "ix")], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: cannot reach Ray at 127.0.0.1:1: Connection refused"], out.stderr
    assert time.perf_counter() - t0 < 60 and not (tmp_path / "ix" / "CURRENT").exists()


def test_without_the_scale_packages_the_engine_imports_and_says_what_to_install():
    code = ("import sys; sys.modules['pymilvus'] = None; sys.modules['ray'] = None\n"
            "import engine.cli, engine.workspace, engine.index.milvus, engine.index.ray_build, engine.eval.bench_ray\n"
            "from engine.errors import EngineError\n"
            "from engine.index.milvus import connect\n"
            "from engine.index.ray_build import start_ray\n"
            "for f in (lambda: connect('x.db'), lambda: start_ray('local')):\n"
            "    try: f()\n"
            "    except EngineError as e: print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["the milvus backend needs pymilvus: pip install -r requirements-scale.txt",
                                       "build-index --ray needs ray: pip install -r requirements-scale.txt"]


def test_remove_product_keeps_what_it_could_not_put_back(tmp_path, demo_dir, monkeypatch):
    """A removal that fails half-way, and whose restore fails too, deletes nothing: the error says where the files are."""
    from engine.errors import CatalogueError
    from engine.io import editing
    from engine.io.editing import copy_catalogue, remove_product

    root = copy_catalogue(demo_dir, tmp_path / "cat")
    pid = sorted(p.name for p in (Path(root) / "image").iterdir())[0]
    annotations = sorted(p.name for p in (Path(root) / "image_annotation" / pid).iterdir())
    rename = os.rename

    def failing(src, dst):
        if ".livematch-remove-" in str(src) or Path(src).parent.parent.name == "image":  # the images, or putting back
            raise OSError("disk gone")
        rename(src, dst)

    monkeypatch.setattr(editing.os, "rename", failing)
    with pytest.raises(CatalogueError, match="kept in") as e:
        remove_product(root, pid)  # the annotations move aside, the images do not, the annotations cannot go back
    kept = Path(str(e.value).rsplit("kept in ", 1)[1])
    assert sorted(p.name for p in (kept / "annotations").iterdir()) == annotations
    assert (Path(root) / "image" / pid).is_dir()
