"""The steps tollmeter runs on the caller's thread, each timed in place: what a metered call's
added time is made of, per tenant, steadier than the whole call's.

A real openai client over the benchmark's fake transport (`overhead.make_client`), patched as
an application patches it; each step the sync wrapper runs is wrapped with a
`perf_counter_ns` pair before patching:

- `start`: the endpoint reads the request (provider by base URL, model, stream flag);
- `admit`: the hooks' first look at the tenant's limits (`LimitKeeper.admit_plain`);
- `read`: the response read on the caller's thread (`openai_chat.read_response`);
- `finished`: the reservation's record, the hand-over to the worker.

Tenants (no limit, a $1M limit, a `--small` limit) take turns block by block. A step takes a
few microseconds, so the machine's noise, which moves the median of whole 1 ms calls by tens
of microseconds on a shared machine, hardly reaches its median: this is what to compare across
SDK majors and tenants. It leaves out the wrapper's own lines (making the `Call`, reading the
scope, classifying the result) and what tollmeter's work costs the SDK's own code in cache
misses, which only `overhead.py` sees. Each timer puts a clock read (0.08 µs) and a call
frame inside what it measures, and costs the call about 0.44 µs in all (warm, in a loop).

    .venv/bin/python benchmarks/segments.py [--calls 500] [--rounds 10] [--latency MS]

`--latency MS`: the fake server waits that long before each answer, so each step runs after
the caller's thread has been off the processor (its code and data colder), as in an application.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import openai

sys.path.insert(0, str(Path(__file__).parent))
from overhead import make_client  # noqa: E402

from tollmeter import Meter, MeterConfig  # noqa: E402
from tollmeter.instrument.openai import ChatCompletions  # noqa: E402

STEPS = ("start", "admit", "read", "finished")
_clock = time.perf_counter_ns


def timing(step: str, fn: Callable[..., Any], times: dict, tenant: list) -> Callable[..., Any]:
    """`fn`, its time added to `times[(the current tenant, step)]` at each call."""

    def timed(*args: Any) -> Any:
        began = _clock()
        try:
            return fn(*args)
        finally:
            times[(tenant[0], step)].append(_clock() - began)

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per tenant per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--small", type=float, default=40.0, help="the monthly limit of the small tenant, USD")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="milliseconds the fake server waits before each answer (as overhead.py --latency)")
    args = parser.parse_args()

    times: dict[tuple[str, str], list[int]] = defaultdict(list)
    tenant = [""]
    own = {name: ChatCompletions.__dict__.get(name) for name in ("start", "read_response")}
    start, read = ChatCompletions.start, inspect.getattr_static(ChatCompletions, "read_response")
    # Before patching: the wrapper binds the endpoint's `start` and reader as it is made.
    ChatCompletions.start = timing("start", start, times, tenant)  # type: ignore[method-assign]
    ChatCompletions.read_response = staticmethod(timing("read", read.__func__, times, tenant))  # type: ignore[assignment]
    try:
        client = make_client(3, args.latency / 1000)
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        meter = Meter(MeterConfig(max_queue_size=1_000_000, store=":memory:"))
        meter.set_limit("acme-limited", 1_000_000, frequency="per_month")
        meter.set_limit("acme-small", args.small, frequency="per_month")
        meter.patch_all()
        hooks = meter._hooks
        hooks.admit = timing("admit", hooks.admit, times, tenant)  # type: ignore[method-assign]
        hooks.finished = timing("finished", hooks.finished, times, tenant)  # type: ignore[method-assign]
        tenants = {"acme": "no limit", "acme-limited": "$1M limit", "acme-small": f"${args.small:g} limit"}

        def calls(tenant_id: str, n: int) -> None:
            tenant[0] = tenant_id
            with meter.for_tenant(tenant_id):
                for _ in range(n):
                    client.chat.completions.create(model="gpt-4o", messages=messages)

        for tenant_id in tenants:
            calls(tenant_id, 300)  # the tenant's first calls (the store is asked once, then memory)
        times.clear()
        order = list(tenants)
        for index in range(args.rounds):
            for tenant_id in order if index % 2 == 0 else order[::-1]:
                calls(tenant_id, args.calls)
        print(f"openai {openai.__version__}; {args.rounds} rounds of {args.calls} calls per tenant; "
              f"latency {args.latency:g} ms; median µs of each step on the caller's thread")
        print(f"{'tenant':<14}" + "".join(f"{step:>10}" for step in STEPS) + f"{'sum':>8}{'finished mean':>16}")
        for tenant_id, label in tenants.items():
            medians = [statistics.median(times[(tenant_id, step)]) / 1000 for step in STEPS]
            mean = statistics.mean(times[(tenant_id, "finished")]) / 1000
            print(f"{label:<14}" + "".join(f"{m:>10.2f}" for m in medians) + f"{sum(medians):>8.2f}{mean:>16.2f}")
        assert meter.flush(60)
        meter.shutdown()
    finally:
        for name, value in own.items():  # the endpoint's own attributes back (inherited: none)
            if value is None:
                delattr(ChatCompletions, name)
            else:
                setattr(ChatCompletions, name, value)


if __name__ == "__main__":
    main()
