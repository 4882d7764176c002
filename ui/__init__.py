"""Streamlit helpers shared by app.py and pages/: settings, cached loaders, progress, rendering.

Pure logic (no Streamlit) lives in ui.inspection, ui.charts and ui.names so that it can be unit-tested, and
ui.matching's ``analyse`` is plain Python beside its ``st.cache_data`` wrapper; ui.state is the one place that
loads models and indexes.
"""
