"""Benchmarks of Stereo Studio on this machine: `python -m benchmarks.run` writes BENCHMARKS.md."""
