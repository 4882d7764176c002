"""Evaluate: match every clip of a dataset with known products; top-1, top-5, MRR and per-clip charts."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine import workspace
from engine.errors import EngineError
from engine.types import EvalReport
from ui import state
from ui.shell import shell
from ui.components import guard, page_header
from ui.charts import risk_coverage_chart, run_line
from ui.evaluation import render_learned, run_evaluation
from ui.views import product_names, render_report

shell()

def default_dataset() -> str:
    try:
        return str(state.catalogue_dir(state.current_settings()))
    except EngineError:
        return ""


def saved_report(dataset: str) -> tuple[EvalReport, Path] | None:
    path = workspace.report_path(state.current_settings(), dataset)
    if not path.is_file():
        return None
    return state.load_report(path), path


def render_verdict_curve(report: EvalReport) -> None:
    """How far the verdict can be trusted: the risk-coverage curve and the leave-one-clip-out calibration."""
    from engine.eval.nested import calibrate_verdict, format_calibration

    if sum(o.truth is not None for o in report.clips) < 2:
        return
    st.subheader("Can the verdict be trusted?", anchor=False)
    st.caption("Clips sorted by how sure the verdict is (its relative margin), surest first: the share answered "
               "wrongly when only the surest clips are answered. Left of the dotted line the verdict says confident.")
    st.plotly_chart(risk_coverage_chart(report), width="stretch", config={"displayModeBar": False})
    st.caption("Not this run's verdicts (counted above): had the threshold been chosen on the other clips, the "
               + format_calibration(calibrate_verdict(report.clips)) + ".")


def main() -> None:
    page_header("Evaluate", "Match every clip of a dataset whose true products are known, and measure how often "
                "the right product comes first.")
    settings = state.current_settings()
    with guard("the evaluation"):
        st.session_state.setdefault("evaluate.dataset", default_dataset())
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        dataset = c1.text_input(
            "Dataset folder", key="evaluate.dataset",
            help="A dataset in the Tianchi layout: image/ (catalogue), video/ (clips); a clip shows the product "
                 "whose id is the clip's name. The current catalogue by default.",
        ).strip()
        run = c2.button("Run evaluation", type="primary", icon=":material/play_arrow:", key="evaluate.run",
                        width="stretch", disabled=not dataset)
        st.caption("Next run: " + run_line(settings.flat())
                   + f" · detector {settings.models.detector} · embedder {settings.models.embedder} "
                   "(change them in the sidebar). The report is saved for the Inspect page.")
        if run:
            _, path = run_evaluation(settings, dataset)
            st.success(f"Evaluation finished: report saved to {path}.", icon=":material/check_circle:")
        if not dataset:
            return
        found = saved_report(dataset)
        if found is None:
            st.info("No report for this dataset yet: run the evaluation to see its metrics and charts.",
                    icon=":material/info:")
            render_learned(settings, dataset)
            return
        report, path = found
        try:
            names = product_names(state.catalogue_at(report.dataset))
        except EngineError:
            names = {}
        for o in report.clips:
            for p in o.result.ranking:
                names.setdefault(p.product_id, p.name)
        render_report(report, names)
        render_verdict_curve(report)
        st.page_link("pages/inspect.py", label="Inspect these matches frame by frame", icon=":material/compare:")
        render_learned(settings, dataset)


with guard("the Evaluate page"):
    main()
