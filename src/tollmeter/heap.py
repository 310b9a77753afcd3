"""A serving process's start-up objects kept out of the garbage collector's way."""

from __future__ import annotations

import gc


def freeze() -> None:
    """Collect, then move every object alive now (modules, price data, the app: about 100,000
    of them) to the collector's permanent generation, so that the full collections a request
    sets off no longer walk them. A dashboard page over a month of 300 customers makes some
    100,000 objects of its own, and its collections took about a fifth of its time
    (docs/benchmarks.md). For a process that only serves (`tollmeter serve`, `tollmeter
    dashboard`): an object alive now that later becomes garbage in a reference cycle is never
    reclaimed, which is why a library importing tollmeter never gets this."""
    gc.collect()
    gc.freeze()
