"""Ratio benchmarks for lightflow (run with ``python -m benchmarks.run``)."""
