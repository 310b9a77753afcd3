"""Limits: what a limit adds per call, and how far concurrency gets past a limit (overshoot).

    cd benchmarks && ../.venv/bin/python limits.py [--calls 2000]

1. Per call, alternating in one process: a tenant without a limit, and a tenant with a limit
   large enough never to refuse (the guard's estimate, reservation and settlement run).
2. Overshoot: 32 threads, 4 processes x 16 threads, and 200 asyncio tasks spend against one
   tenant's $0.50 daily limit on a SQLite store, with calls of varying cost (an in-process mock
   provider bills each call below its reservation), until refused. Reports the settled spend
   against the limit, calls made and refused, and how many lease requests reached the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import openai

try:
    import httpx2 as httpx_mod
except ImportError:
    import httpx as httpx_mod

from overhead import make_client, timed
from tollmeter import LimitExceededException, Meter, MeterConfig
from tollmeter.store.store import Store

LIMIT = Decimal("0.5")


def billed(request):
    body = json.loads(request.content)
    text = json.dumps(body["messages"])
    prompt = len(text) // 4 + 3
    completion = max(1, body["max_tokens"] * (3 + len(text) % 5) // 8)
    return httpx_mod.Response(200, json={
        "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})


def billing_client(async_client: bool = False):
    if async_client:
        http = httpx_mod.AsyncClient(transport=httpx_mod.MockTransport(billed))
        return openai.AsyncOpenAI(api_key="b", base_url="https://api.openai.com/v1", http_client=http, max_retries=0)
    http = httpx_mod.Client(transport=httpx_mod.MockTransport(billed))
    return openai.OpenAI(api_key="b", base_url="https://api.openai.com/v1", http_client=http, max_retries=0)


def count_grants(meter: Meter) -> list[int]:
    """Count the lease requests this meter's guard sends to the store."""
    counter = [0]
    store = meter._limits.store
    original = store.grant

    def grant(*args, **kwargs):
        counter[0] += 1
        return original(*args, **kwargs)

    store.grant = grant
    return counter


def spend_calls(meter, client, worker, calls=400):
    sent = refused = 0
    with meter.for_tenant("acme"):
        for j in range(calls):
            try:
                client.chat.completions.create(
                    model="gpt-4o", max_tokens=20 + (worker * 37 + j * 53) % 400,
                    messages=[{"role": "user", "content": f"question {worker}-{j} " + "x" * (j % 90)}])
            except LimitExceededException:
                refused += 1
                if refused >= 5:
                    break
            else:
                sent += 1
    return sent, refused


def per_call(calls: int) -> None:
    client = make_client(10)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    # The worker waits for flush(): the figures are the caller's thread alone; the worker's
    # share (pricing, writing events and spend to SQLite) is timed separately below.
    meter = Meter(MeterConfig(store=":memory:", max_queue_size=1_000_000, flush_interval=3600,
                              max_batch_size=1_000_000))
    meter.patch_all()
    meter.set_limit("capped", Decimal("1000000"), frequency="per_month")

    def call(tenant):
        with meter.for_tenant(tenant):
            client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=100)

    for _ in range(100):
        call("free")
        call("capped")
    meter.flush(60)
    free, capped = [], []
    for i in range(calls * 2):
        if i % 2:
            capped.append(timed(lambda: call("capped")))
        else:
            free.append(timed(lambda: call("free")))
    start = time.perf_counter()
    meter.flush(600)
    worker_us = (time.perf_counter() - start) / (calls * 2) * 1e6
    meter.shutdown()
    a, b = statistics.median(free), statistics.median(capped)
    print(f"caller's thread, median µs per call: no limit {a:.1f}, with a limit {b:.1f}, "
          f"added {b - a:+.1f} (ratio {b / a:.3f})")
    print(f"background worker: {worker_us:.1f} µs per event (price, store the event, spend and lease in SQLite)")


def threads_scenario(db: str) -> tuple[int, int, int]:
    meter = Meter(MeterConfig(store=db, flush_interval=0.05))
    meter.patch("openai")
    meter.set_limit("acme", LIMIT, frequency="per_day")
    grants = count_grants(meter)
    client = billing_client()
    barrier = threading.Barrier(32)

    def worker(i):
        barrier.wait()
        return spend_calls(meter, client, i)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(worker, range(32)))
    meter.flush(10)
    meter.shutdown()
    return sum(s for s, _ in results), sum(r for _, r in results), grants[0]


def _child(db: str, index: int, queue) -> None:
    meter = Meter(MeterConfig(store=db, flush_interval=0.05))
    meter.patch("openai")
    grants = count_grants(meter)
    client = billing_client()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda t: spend_calls(meter, client, index * 16 + t), range(16)))
    meter.flush(10)
    meter.shutdown()
    queue.put((sum(s for s, _ in results), sum(r for _, r in results), grants[0]))


def processes_scenario(db: str) -> tuple[int, int, int]:
    store = Store(db)
    store.set_limit("acme", "per_day", LIMIT)
    store.close()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_child, args=(db, i, queue)) for i in range(4)]
    for p in processes:
        p.start()
    results = [queue.get(timeout=300) for _ in processes]
    for p in processes:
        p.join()
    return tuple(sum(r[k] for r in results) for k in range(3))  # type: ignore[return-value]


def asyncio_scenario(db: str) -> tuple[int, int, int]:
    meter = Meter(MeterConfig(store=db, flush_interval=0.05))
    meter.patch("openai")
    meter.set_limit("acme", LIMIT, frequency="per_day")
    grants = count_grants(meter)
    client = billing_client(async_client=True)

    async def task(i):
        sent = refused = 0
        async with meter.for_tenant("acme"):
            for j in range(50):
                try:
                    await client.chat.completions.create(
                        model="gpt-4o", max_tokens=20 + (i * 37 + j * 53) % 400,
                        messages=[{"role": "user", "content": f"q {i}-{j} " + "y" * (j % 90)}])
                except LimitExceededException:
                    refused += 1
                    if refused >= 3:
                        break
                else:
                    sent += 1
        return sent, refused

    async def run():
        return await asyncio.gather(*(task(i) for i in range(200)))

    results = asyncio.run(run())
    meter.flush(10)
    meter.shutdown()
    return sum(s for s, _ in results), sum(r for _, r in results), grants[0]


def overshoot() -> None:
    print(f"\n{'scenario':<24}{'limit':>8}{'settled spend':>15}{'of limit':>10}{'over':>8}"
          f"{'calls':>7}{'refused':>9}{'leases':>8}")
    for name, scenario in (("32 threads", threads_scenario), ("4 processes x 16", processes_scenario),
                           ("200 asyncio tasks", asyncio_scenario)):
        with tempfile.TemporaryDirectory() as tmp:
            db = str(Path(tmp) / "limits.db")
            sent, refused, grants = scenario(db)
            store = Store(db)
            spend = store.spent("acme")["per_day"]
            store.close()
        over = max(Decimal(0), spend - LIMIT)
        print(f"{name:<24}{'$' + str(LIMIT):>8}{'$' + format(spend, 'f'):>15}{float(spend / LIMIT):>10.1%}"
              f"{'$' + format(over, 'f'):>8}{sent:>7}{refused:>9}{grants:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    per_call(args.calls)
    overshoot()


if __name__ == "__main__":
    main()
