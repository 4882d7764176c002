"""Running an evaluation from the app: progress bar, then the report saved where Inspect finds it."""

from __future__ import annotations

from pathlib import Path

from engine import workspace
from engine.config import Settings
from engine.errors import CatalogueError
from engine.eval.evaluate import evaluate, save_report
from engine.io.catalogue import load_catalogue
from engine.types import EvalReport

from .progress import describe_evaluation, run_with_progress
from .state import allowed_folder, engine_settings


def run_evaluation(settings: Settings, dataset: str | Path) -> tuple[EvalReport, Path]:
    """Index the dataset, match each of its clips, save the report; returns it and where it was saved."""
    folder = allowed_folder(dataset)
    catalogue = load_catalogue(folder)
    clips = [c for c in catalogue.clips.values() if c.path]
    if not clips:
        raise CatalogueError(f"{folder}: no clips to evaluate (expected videos in {folder / 'video'})")
    s = engine_settings(settings)
    report = run_with_progress(
        lambda progress: evaluate(str(folder.absolute()), s, progress=progress, catalogue=catalogue),
        describe_evaluation(len(clips)),
    )
    return report, save_report(report, workspace.report_path(settings, folder))


def render_learned(settings: Settings, dataset: str | Path) -> None:
    """The last leave-products-out comparison of the learned parts for this dataset, when one was run
    (``python -m engine evaluate --dataset D --compare --learned``): one row per set-up."""
    import streamlit as st

    from engine.eval.crossval import LearnedComparison

    path = workspace.learned_report_path(settings, dataset)
    if not path.is_file():
        return
    comparison = LearnedComparison.load(path)
    st.subheader("Learned parts · leave products out", anchor=False)
    folds = " · ".join("{" + ", ".join(f) + "}" for f in comparison.folds)
    st.caption(f"Each clip is scored by models trained without its product. Held-out products per fold: {folds}. "
               "Votes: the share of sampled frames that voted for the true product.")
    rows = [{"set-up": r.setup, "top-1": r.metrics.top1, "top-5": r.metrics.top5, "MRR": r.metrics.mrr,
             "votes": r.metrics.vote_share, "region top-1": r.metrics.region_top1} for r in comparison.rows]
    share = st.column_config.ProgressColumn(format="%.2f", min_value=0.0, max_value=1.0)
    st.dataframe(rows, hide_index=True, width="stretch", height=(len(rows) + 1) * 35 + 3,  # every row visible
                 column_config={"top-1": share, "votes": share, "MRR": st.column_config.NumberColumn(format="%.3f"),
                                "top-5": st.column_config.NumberColumn(format="%.2f"),
                                "region top-1": st.column_config.NumberColumn(format="%.2f")})
    d, c = comparison.detection, comparison.categories
    st.caption(f"Garment detection AP@0.5 on {d.get('images', 0)} held-out frames: learned head "
               f"{d.get('ap50_garment_head', 0):.3f} · person boxes {d.get('ap50_detector_regions', 0):.3f} · "
               f"unlearned windows {d.get('ap50_all_windows', 0):.3f}. Category accuracy on {c.get('boxes', 0)} "
               f"held-out product boxes: k-NN {c.get('knn_accuracy', 0):.2f} · head {c.get('head_accuracy', 0):.2f} "
               f"· fused {c.get('fused_accuracy', 0):.2f}. Saved in {path}.")
