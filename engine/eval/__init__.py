"""Measuring: evaluation reports, the registry of named set-ups, leave-products-out comparison, detection AP,
and the speed benchmarks."""
