"""Experiments on real Human3.6M motion: weak supervision (claim 1) and temporal models (claim 2).

Run from the repository root, e.g. `python -m experiments.temporal --quick`. See README.md.
"""
