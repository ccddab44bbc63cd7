"""Experiments: runnable demos, benchmarks and the ivi-rl command line."""
