"""Streamlit helpers shared by app.py and pages/: settings, cached loaders, progress, rendering.

Pure logic (no Streamlit) lives in ui.matching, ui.inspection and ui.charts so that it can be unit-tested;
ui.state is the one place that loads models and indexes.
"""
