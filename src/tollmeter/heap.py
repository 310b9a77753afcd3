"""A serving process's garbage collector: its start-up objects kept out of the collector's way,
and collections only when enough new objects are alive to be worth one."""

from __future__ import annotations

import gc

#: The garbage collector's thresholds in a serving process (with its start-up heap frozen).
#: Python's (700, 10, 10) ran about ten young collections per ingest batch of 1,000 events, and
#: with batches in flight their rows were walked again by the older generations: 758 young, 67
#: middle and 6 full collections for 78 batches, about 10% of the server's CPU. A batch's objects
#: are freed by reference counting (decoded JSON and rows have no cycles), so collecting after
#: every 20,000 new containers instead loses nothing: 14 young and 1 full collection for the same
#: 78 batches. The reports are alike: a leak report at a month's end under Python's thresholds
#: set off a full collection every seven reports or so, walking the closed days' rows kept
#: between reports (30,000 of them) for 30-130 ms, a report's p95; under these, none in twenty
#: (docs/benchmarks.md).
SERVING_THRESHOLDS = (20_000, 20, 100)


def for_serving() -> None:
    """Collect, then move every object alive now (modules, price data, the app: about 100,000
    of them) to the collector's permanent generation, so that the full collections a request
    sets off no longer walk them, and collect at `SERVING_THRESHOLDS` from now on. A dashboard
    page over a month of 300 customers makes some 100,000 objects of its own, and its
    collections took about a fifth of its time (docs/benchmarks.md). For a process that only
    serves (`tollmeter serve`, `tollmeter dashboard`): an object alive now that later becomes
    garbage in a reference cycle is never reclaimed, which is why a library importing tollmeter
    never gets this."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
