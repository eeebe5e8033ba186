"""Benchmark of the exporter against the simulators (`make bench`); see docs/performance.md."""
