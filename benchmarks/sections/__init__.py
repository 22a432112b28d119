"""One module per BENCHMARKS.md section, each with `measure(quick: bool) -> str` returning markdown."""
