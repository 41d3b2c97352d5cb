"""Benchmarks: run by hand, one figure per line."""
