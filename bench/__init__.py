"""Benchmarks run by `make bench`: each module's run() measures side by side and returns ratios."""
