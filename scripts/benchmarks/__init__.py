"""Sections of scripts/benchmark.py: each module has NAME and run(args) -> dict."""
