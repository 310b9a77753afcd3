"""Demo helpers: a local fake LLM provider for ``make demo`` and benchmarks."""
