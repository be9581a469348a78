"""Datasets, evaluation runs, metrics and comparisons."""
