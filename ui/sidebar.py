"""The sidebar: catalogue folder and matching settings, turned into the session's Settings."""

from __future__ import annotations

import streamlit as st

from engine.config import APP_PRESET, SEARCH_PRESETS, Settings, Windows, preset_of, set_from_environment
from engine.errors import EngineError
from engine.eval.bench_machine import load_last, speed_hint
from engine.models import DETECTORS, embedder_names
from ui.text import md

from .state import PENDING_CATALOGUE_KEY, PENDING_PREFIX, SETTINGS_KEY, get_catalogue, is_builtin_demo, trained_checkpoints

MODEL_LABELS = {  # short: the sidebar's selectboxes cut longer labels off; the details are in their help
    "ssd-mobilenet-v2-coco": "SSD-MobileNet-v2",
    "ssd-mobilenet-v2-coco-openvino": "SSD-MobileNet-v2 (OpenVINO)",
    "ssd300-vgg16": "SSD300-VGG16 (own weights)",
    "efficientnet-lite012-gem": "Lite0+1+2 ensemble",
    "efficientnet-lite02-gem": "Lite0+2 ensemble",
    "efficientnet-lite0-gem": "EfficientNet-Lite0 GeM",
    "efficientnet-lite1-gem": "EfficientNet-Lite1 GeM",
    "efficientnet-lite2-gem": "EfficientNet-Lite2 GeM",
    "efficientnet-lite0": "EfficientNet-Lite0 head",
    "resnet50": "ResNet-50 (own weights)",
}
DETECTOR_HELP = ("Finds the presenter. SSD-MobileNet-v2 (COCO): fast, the default. SSD-MobileNet-v2 (OpenVINO): the "
                 "same network and boxes, detection about twice as fast (a clip about 18% faster), slower to start; "
                 "needs a detection threshold of at least 0.3. SSD300-VGG16 (COCO): needs its weights in "
                 "$LIVEMATCH_SSD300_WEIGHTS.")
EMBEDDER_HELP = ("Lite0+1+2 ensemble: EfficientNet-Lite0, Lite1 and Lite2, each GeM-pooled over its last stage, "
                 "cosines averaged: the default, the most accurate on clips nobody tuned on. "
                 "EfficientNet-Lite0 GeM: generalised-mean pooling of the last convolutional stage (the previous default). "
                 "EfficientNet-Lite0 head: the pooled 1280-d head feature (the baseline). ResNet-50: needs its "
                 "weights in $LIVEMATCH_RESNET50_WEIGHTS. Changing the embedder builds a separate index for it the "
                 "first time.")
STORE_KEY = "livematch.sidebar"  # widget key -> value, shared by every page's sidebar
QUERY_CATALOGUE = "catalogue"  # the page URL's query parameter holding the catalogue folder
URL_SEEN = "url.read"  # in the store: the page URL's parameters were read (once per session)
SEARCH_MODES = list(SEARCH_PRESETS)  # "Standard" (the default, APP_PRESET), "Exhaustive"
FRAMES_RANGE = (1, 30)
TOP_K_RANGE = (1, 10)


def _clamp(v: int, lo_hi: tuple[int, int]) -> int:
    return max(lo_hi[0], min(lo_hi[1], int(v)))


def _defaults(base: Settings) -> dict[str, object]:
    return {
        "cfg.catalogue": base.paths.catalogue,
        "cfg.frames": _clamp(base.detection.frames, FRAMES_RANGE),
        "cfg.det_threshold": round(min(max(base.detection.det_threshold, 0.05), 0.95), 2),
        "cfg.top_k": _clamp(base.search.top_k, TOP_K_RANGE),
        "cfg.detector": base.models.detector,
        "cfg.embedder": base.models.embedder,
        "cfg.head": base.models.head,
        "cfg.garment_model": base.models.garment_model,
        "cfg.search": preset_of(base) if set_from_environment("windows") else APP_PRESET,
        "cfg.shop": base.search.shop,
    }


def _windows(mode: str, garment_head: bool) -> Windows:
    """The window strategy of a search preset. With a garment head, Standard pools its boxes from one pass per
    region and Exhaustive crops and embeds them."""
    windows = SEARCH_PRESETS.get(mode, SEARCH_PRESETS[APP_PRESET])
    if garment_head:
        return Windows.EXHAUSTIVE if windows == Windows.EXHAUSTIVE else Windows.POOLED
    return windows


def _options(registry: dict, current: str) -> list[str]:
    names = list(registry)
    return names if current in names else [current, *names]


def _apply_defaults_and_pending(base: Settings) -> None:
    """The sidebar's values, kept in one store that outlives each page's widgets (every page draws the sidebar,
    and Streamlit drops a page's widget state when another page runs): defaults on first use, then values
    other code asked for, then each widget is seeded from the store before it is drawn."""
    store = st.session_state.setdefault(STORE_KEY, {})
    for key, value in _defaults(base).items():
        store.setdefault(key, value)
    if URL_SEEN not in store:  # a new session (a reload, a link, a new tab): the page's URL names the catalogue
        store[URL_SEEN] = True
        linked = st.query_params.get(QUERY_CATALOGUE)
        if linked is not None:
            store["cfg.catalogue"] = str(linked)
    pending = st.session_state.pop(PENDING_CATALOGUE_KEY, None)
    if pending is not None:
        store["cfg.catalogue"] = pending
    for key in ("cfg.head", "cfg.garment_model"):
        chosen = st.session_state.pop(PENDING_PREFIX + key, None)
        if chosen is not None:
            store[key] = chosen
    for key, value in store.items():
        if key.startswith("cfg."):
            st.session_state[key] = value


def _link_catalogue(folder: str) -> None:
    """Keep the catalogue folder in the page's URL (?catalogue=...), so a reload or a shared link shows it again;
    the built-in demo (no folder) leaves the URL plain."""
    if folder and st.query_params.get(QUERY_CATALOGUE) != folder:
        st.query_params[QUERY_CATALOGUE] = folder
    elif not folder and QUERY_CATALOGUE in st.query_params:
        del st.query_params[QUERY_CATALOGUE]


def _keep(key: str) -> None:
    """on_change of every sidebar widget: the new value goes to the store."""
    st.session_state[STORE_KEY][key] = st.session_state[key]


def _bound(key: str) -> dict:
    """A sidebar widget's key, bound to the store."""
    return {"key": key, "on_change": _keep, "args": (key,)}


def render_sidebar() -> Settings:
    """Draw the settings and return this session's Settings (also stored for the pages)."""
    base = Settings.from_env()
    hint = speed_hint(load_last(base.home))  # the last `python -m engine bench` on this home, if any
    _apply_defaults_and_pending(base)
    with st.sidebar:
        st.text_input(
            "Catalogue folder", **_bound("cfg.catalogue"), placeholder="Built-in demo",
            help="A dataset in the Tianchi layout (image/, image_annotation/, video/) or a folder with one "
                 "sub-folder of images per product. Leave empty for the built-in demo. Only folders under the "
                 "roots the operator lists (LIVEMATCH_CATALOGUE_ROOTS) open.",
        )
        settings = base.with_(catalogue=str(st.session_state["cfg.catalogue"]).strip())
        _link_catalogue(settings.paths.catalogue)
        _catalogue_status(settings)
        st.slider("Frames to sample", *FRAMES_RANGE, **_bound("cfg.frames"),
                  help="Frames taken evenly from each clip. More frames: steadier votes, slower matching.")
        st.slider("Detection threshold", 0.05, 0.95, step=0.05, **_bound("cfg.det_threshold"),
                  help="Minimum detector score of a person region; below it the whole frame is searched.")
        st.slider("Products to show (top-K)", *TOP_K_RANGE, **_bound("cfg.top_k"))
        st.text_input("Only this shop", **_bound("cfg.shop"), placeholder="Every shop",
                      help="Search only the products whose products.json names this shop (a Milvus filter with "
                           "LIVEMATCH_INDEX_BACKEND=milvus, an exact search over that shop's regions otherwise).")
        with st.expander("Models", icon=":material/memory:"):
            st.selectbox("Detector", _options(DETECTORS, base.models.detector), **_bound("cfg.detector"),
                         format_func=lambda n: MODEL_LABELS.get(n, n), help=DETECTOR_HELP)
            st.selectbox("Embedder", _options(embedder_names(), base.models.embedder), **_bound("cfg.embedder"),
                         format_func=lambda n: MODEL_LABELS.get(n, n), help=EMBEDDER_HELP)
            st.segmented_control(
                "Garment search", SEARCH_MODES, **_bound("cfg.search"),
                help=f"Standard (default): each person region is embedded exactly and its garment windows are "
                     f"pooled from one pass per region, the setting used for evaluation ({hint['standard']}). "
                     f"Exhaustive: every garment window is cropped and embedded ({hint['exhaustive']}); on the "
                     "development set both ranked 6 of 7 real clips first. With a trained garment head, Standard "
                     "takes its boxes from that one pass and Exhaustive crops them.",
            )
            _checkpoint_select(
                base, "projection-head", "cfg.head", "Embedding head", "ImageNet features (no head)",
                "A projection head trained with triplet loss (python -m engine train-embedding). "
                "The first match with a new head re-indexes the catalogue.",
            )
            _checkpoint_select(
                base, "garment-head", "cfg.garment_model", "Garment regions", "Searched garment windows",
                "A garment-region head (python -m engine train-garments) picks 3 garment boxes per person and "
                "gives each a category; without one, every garment window is searched.",
            )
    settings = settings.with_(
        frames=int(st.session_state["cfg.frames"]),
        det_threshold=float(st.session_state["cfg.det_threshold"]),
        top_k=int(st.session_state["cfg.top_k"]),
        detector=str(st.session_state["cfg.detector"]),
        embedder=str(st.session_state["cfg.embedder"]),
        head=str(st.session_state.get("cfg.head") or ""),
        garment_model=str(st.session_state.get("cfg.garment_model") or ""),
        windows=_windows(str(st.session_state.get("cfg.search")), bool(st.session_state.get("cfg.garment_model"))),
        shop=str(st.session_state.get("cfg.shop") or "").strip(),
    )
    st.session_state[SETTINGS_KEY] = settings
    return settings


def _checkpoint_select(base: Settings, kind: str, key: str, label: str, none_label: str, help_text: str) -> None:
    """A selectbox over the trained checkpoints of ``kind``; shown only when there is something to choose."""
    found = dict(trained_checkpoints(base, kind))
    current = str(st.session_state.get(key) or "")
    if current and current not in found:
        found[current] = current.rsplit("/", 1)[-1]
    if not found:
        st.session_state[key] = st.session_state[STORE_KEY][key] = ""
        return
    st.selectbox(label, ["", *found], help=help_text, **_bound(key),
                 format_func=lambda p: found.get(p, none_label) if p else none_label)


def _catalogue_status(settings: Settings) -> None:
    try:
        catalogue = get_catalogue(settings)
    except EngineError as e:
        st.error(md(e), icon=":material/folder_off:")
        return
    except Exception:  # noqa: BLE001 - the page below reports the details
        st.error("This catalogue cannot be read.", icon=":material/folder_off:")
        return
    name = "Built-in demo" if is_builtin_demo(settings) else catalogue.root.rsplit("/", 1)[-1]
    clips = sum(1 for c in catalogue.clips.values() if c.path)
    st.caption(f":material/inventory_2: **{md(name)}** · {len(catalogue.products)} products · {clips} clips")
