"""Sections of scripts/gpu_benchmark.py (issue 15): each module has ``NAME`` and
``run(settings) -> dict``; :mod:`gpu_benchmarks.harness` times the training steps."""
