"""A meter imports genai-prices (and httpx2 under it) on the thread that makes it, before any
thread of its own starts: tollmeter's threads (the warm-up, the worker, callers pricing or
estimating) importing it at once can deadlock Python's module locks, which then hand one of
them a half-made module ("partially initialized module 'httpx2'", "_DeadlockError ...
genai_prices.types": seen in spawned apps of 16 threads, and 2 times in 40 when six of its
modules are imported by six threads at once)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import importlib.abc, sys, threading, time

    class Watch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "genai_prices":
                print("imported on", threading.current_thread().name, flush=True)
            return None

    import tollmeter
    assert "genai_prices" not in sys.modules
    sys.meta_path.insert(0, Watch())
    meter = tollmeter.Meter(tollmeter.MeterConfig(store={store}))
    for _ in range(1000):  # the warm-up loads the prices in the background
        if "genai_prices" in sys.modules:
            break
        time.sleep(0.01)
    meter.shutdown()
""")


@pytest.mark.parametrize("store", ["False", "'{tmp}/s.db'"])
def test_genai_prices_is_imported_by_the_thread_that_makes_the_meter(tmp_path, store):
    code = CHILD.format(store=store.format(tmp=tmp_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["imported on MainThread"], done.stdout + done.stderr
