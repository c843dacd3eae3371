"""Benchmarks: `python -m bench` runs every script and writes bench/RESULTS.md."""
