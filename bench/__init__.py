"""Benchmark harness: throughput and latency of the collector, the aggregator and the demo month.

Run with `python -m bench.run --help`. Every benchmark runs its own collector/aggregator
processes against a fresh database and fresh topics, so the running demo stack is untouched.
"""
