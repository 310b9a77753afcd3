"""What the worker's batches cost a thread whose wait is over, with the worker's pauses and without.

An application thread sleeps `--sleep` µs at a time, as a call waits for the network, while the
background worker handles batches of `--batch` queued openai calls (built, priced and written to
an in-memory store, the default pipeline). Each time the sleep ends, the thread waits for the
interpreter lock; what is printed is that wait (the time beyond the sleep), for three cases
taken batch by batch in a shuffled order in one process:

- floor: no batch running (the machine's own wake-up time);
- no pauses: the worker's loops never pause (`pacing.SLICE` of a day);
- pauses: the default, a pause of `pacing.PAUSE` every `pacing.SLICE` of work.

Then the same batches with nobody waiting: the worker's time per event, which the pauses
stretch. The queued calls are made once, before the measurement, and the collector is frozen
over them, so that no full collection of what the benchmark holds falls into a batch.

    .venv/bin/python benchmarks/worker_pauses.py [--batch 500] [--rounds 10] [--sleep 200] [--tenant acme]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import threading
import time
from pathlib import Path

from tollmeter import Meter, MeterConfig, pacing

sys.path.insert(0, str(Path(__file__).parent))
from overhead import make_client  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
DAY = 86_400.0


def queued_calls(meter: Meter, tenant: str, count: int) -> list:
    """`count` finished calls as the worker receives them (taken from its queue unhandled)."""
    client = make_client(3)
    worker = meter._pipeline.worker
    taken: list = []
    handle = worker._handle_batch
    worker._handle_batch = taken.extend
    try:
        with meter.for_tenant(tenant):
            for _ in range(count):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        meter.flush(60)
    finally:
        worker._handle_batch = handle
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500, help="calls per batch")
    parser.add_argument("--rounds", type=int, default=10, help="batches per case")
    parser.add_argument("--sleep", type=float, default=200.0, help="µs the waking thread sleeps each time")
    parser.add_argument("--tenant", default="acme", help="acme (no limit) or acme-limited ($1M a month)")
    args = parser.parse_args()

    meter = Meter(MeterConfig(store=":memory:", flush_interval=3600, max_batch_size=1_000_000,
                              max_queue_size=1_000_000))
    meter.set_limit("acme-limited", 1_000_000, frequency="per_month")
    meter.patch_all()
    slice_, batch = pacing.SLICE, args.batch
    try:
        cases = {"floor": None, "no pauses": DAY, "pauses": slice_}
        paced = [case for case, s in cases.items() if s is not None]
        items = queued_calls(meter, args.tenant, batch * (1 + 2 * len(paced) * args.rounds))
        handle = meter._pipeline.handle_batch
        handle(items[:batch])  # warm: the store's first writes, the price table
        batches = iter(range(batch, len(items), batch))
        gc.collect()
        gc.freeze()

        def run(case: str) -> float:
            """One batch of `case`: seconds per event."""
            slice_len = cases[case]
            start = time.perf_counter()
            if slice_len is None:
                time.sleep(batch * 50e-6)  # about a batch's time
            else:
                pacing.SLICE, pacing._due = slice_len, 0.0
                at = next(batches)
                handle(items[at:at + batch])
            return (time.perf_counter() - start) / batch

        waits: dict[str, list[float]] = {case: [] for case in cases}
        current: list[str | None] = [None]
        stop = threading.Event()
        sleep_s = args.sleep / 1e6

        def sleeper() -> None:
            while not stop.is_set():
                start = time.perf_counter_ns()
                time.sleep(sleep_s)
                beyond = (time.perf_counter_ns() - start) / 1000 - args.sleep
                case = current[0]
                if case is not None:
                    waits[case].append(beyond)

        thread = threading.Thread(target=sleeper, daemon=True)
        thread.start()
        rng = random.Random(1)
        for _ in range(args.rounds):
            order = list(cases)
            rng.shuffle(order)
            for case in order:
                current[0] = case
                run(case)
                current[0] = None
                time.sleep(0.005)
        stop.set()
        thread.join()
        gc.unfreeze()

        per_event: dict[str, list[float]] = {case: [] for case in paced}
        for _ in range(args.rounds):
            for case in rng.sample(paced, len(paced)):
                per_event[case].append(run(case))
    finally:  # as it was: the slice, no pause owed from a case's slice of a day, the SDK unpatched
        pacing.SLICE, pacing._due = slice_, 0.0
        meter.unpatch_all()
        meter.shutdown()

    print(f"{args.tenant}: {args.rounds} batches of {batch} calls per case; the waking thread sleeps "
          f"{args.sleep:g} µs; pauses of {pacing.PAUSE * 1e6:g} µs every {slice_ * 1e6:g} µs of work")
    print(f"{'case':<11}{'wakes':>7}{'median':>8}{'p90':>8}{'p99':>8}{'mean':>8}{'>1 ms':>8}{'>4 ms':>8}"
          f"{'µs/event, nobody waiting':>27}")
    for case in cases:
        values = sorted(waits[case]) or [0.0]
        at = lambda q: values[min(len(values) - 1, int(len(values) * q))]  # noqa: E731
        over = lambda ms: sum(v > ms * 1000 for v in values) / len(values)  # noqa: E731
        cost = f"{statistics.median(per_event[case]) * 1e6:>27.1f}" if case in per_event else ""
        print(f"{case:<11}{len(waits[case]):>7}{at(0.5):>8.0f}{at(0.9):>8.0f}{at(0.99):>8.0f}"
              f"{statistics.mean(values):>8.0f}{over(1):>8.1%}{over(4):>8.1%}{cost}")


if __name__ == "__main__":
    main()
