"""What a metered call adds on the caller's thread, counted by valgrind's cachegrind: instructions
and simulated cache misses, exact where the wall clock of a shared machine is not.

Each case runs in a child process under cachegrind twice, with `--calls` A and B calls after a
warm-up; (metered B - metered A) - (bare B - bare A), over B - A calls, is what one metered call
adds, free of start-up and import costs. Bare calls are the SDK with the wrapper stepping aside
(as `overhead.py`'s alternating bare calls). The background worker is kept idle during the
calls (a long flush interval, a batch larger than the run); instead, the queue is emptied after
each call, so that what a call keeps is freed at once, as the bare call's own objects are (else
the allocator's work on a growing heap, different from run to run, swamps the difference). The
heap is frozen after the warm-up (`gc.freeze`). What is counted is the caller's own path; with a
limit, its reservations stay open (the worker never settles them) and keep their calls. The second-level cache is simulated as 2 MB (`--LL=2097152,16,64`); the
first-level caches are the host's.

    .venv/bin/python benchmarks/instructions.py [--tenant acme|acme-limited|acme-small] [--calls 500,1500] [--jobs 2]

Needs valgrind (`apt-get install valgrind`); takes a few minutes (each call is 50-100 times
slower under cachegrind).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: cachegrind's events, in the order of its `summary:` line.
EVENTS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw")
SHOWN = {"Ir": "instructions", "I1mr": "L1 instruction misses", "D1mr": "L1 data read misses",
         "D1mw": "L1 data write misses", "ILmr": "L2 instruction misses", "DLmr": "L2 data read misses",
         "DLmw": "L2 data write misses"}


def child(mode: str, tenant: str, calls: int) -> None:
    """The measured process: `calls` chat completions after 300 of warm-up."""
    sys.path.insert(0, str(Path(__file__).parent))
    from overhead import make_client

    from tollmeter import Meter, MeterConfig

    meter = Meter(MeterConfig(max_queue_size=1_000_000, store=":memory:", flush_interval=3600,
                              max_batch_size=100_000, limits_wait=30, lease_ttl=36_000))
    meter.patch_all()
    meter.set_limit("acme-limited", 1_000_000, frequency="per_month")
    meter.set_limit("acme-small", 40, frequency="per_month")
    client = make_client(10)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    meter.set_tenant(tenant)
    meter.instrumenting = mode == "metered"
    for _ in range(300):
        client.chat.completions.create(model="gpt-4o", messages=messages)
    if mode == "metered":
        meter.flush()
    gc.collect()
    gc.freeze()
    queue = meter._pipeline.worker._queue  # emptied after each call, bare or metered, as the
    for _ in range(calls):                 # worker would: what a call keeps is freed, as a bare
        client.chat.completions.create(model="gpt-4o", messages=messages)  # call's is
        queue.clear()
    os._exit(0)  # no shutdown: the queued calls are not handled inside the count


def counted(directory: str, mode: str, tenant: str, calls: int) -> list[int]:
    out = os.path.join(directory, f"{mode}.{calls}")
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--LL=2097152,16,64",
               f"--cachegrind-out-file={out}", sys.executable, __file__, "--child", mode, tenant, str(calls)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for line in Path(out).read_text().splitlines():
        if line.startswith("summary:"):
            return [int(value) for value in line.split()[1:]]
    raise RuntimeError(f"no summary in {out}")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="acme", help="acme (no limit), acme-limited ($1M), acme-small ($40)")
    parser.add_argument("--calls", default="500,1500", help="the two call counts compared")
    parser.add_argument("--jobs", type=int, default=2, help="cachegrind processes at once")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    few, many = (int(n) for n in args.calls.split(","))
    with tempfile.TemporaryDirectory() as directory, ThreadPoolExecutor(args.jobs) as pool:
        runs = {(mode, n): pool.submit(counted, directory, mode, args.tenant, n)
                for mode in ("bare", "metered") for n in (few, many)}
        got = {key: run.result() for key, run in runs.items()}
    per_call = {mode: [(b - a) / (many - few) for a, b in zip(got[(mode, few)], got[(mode, many)])]
                for mode in ("bare", "metered")}
    print(f"tenant {args.tenant}; {few} and {many} calls; per call, bare and what a metered call adds:")
    for index, event in enumerate(EVENTS):
        if event in SHOWN:
            bare, metered = per_call["bare"][index], per_call["metered"][index]
            print(f"  {SHOWN[event]:<24}{bare:>14,.0f}{metered - bare:>+12,.0f}")


if __name__ == "__main__":
    main()
