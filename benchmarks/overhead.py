"""Per-call overhead of tollmeter on the caller's thread, against the bare SDK in the same run.

The SDK talks to an in-process mock transport (no sockets), so what is measured is the SDK's own
work plus ours. Bare and metered calls alternate; the medians and 99th percentiles of per-call
times are compared, for a tenant without a limit and one with a limit. The background worker
runs on its own schedule throughout, as in an application. Streams: the added time is divided
by the number of chunks; and apart, a stream's fixed cost and its cost per chunk, from streams of
two lengths alternating (`stream_lengths`: the per-chunk target is the marginal cost of a chunk).

    .venv/bin/python benchmarks/overhead.py [--calls 3000] [--chunks 100] [--no-store] [--repeat 1] [--small 40]
                                            [--clock wall|cpu] [--lengths 11,1001] [--stream-pairs 20]
                                            [--stream-rounds 5] [--only plain|streams]

Tenants: "acme" has no limit; "acme-limited" $1M a month (its lease is ample: plain requests
reserve their table bound, see docs/limits.md); "acme-small" `--small` USD a month ($40 by
default: a lease of about 48 worst cases, ample while 16 of them are free, below that each call
reserves its estimate at the first look; its finished calls are settled on the guard's settling
thread once fewer than 32 are free; $5: a lease of about 8, never ample, every call estimated
and priced at the first look, and settled at once). `--repeat N` runs the alternating non-streamed
cases N more times and prints each one's median over the repeats with its range, and the
difference a limit makes within each repeat (both tenants' calls share the machine's load).
`--clock cpu` times each call by the calling thread's own CPU time (`time.thread_time_ns`)
instead of the wall clock: the time the caller's thread spends running, which other processes'
load does not stretch (it still shares the processor's caches with them); a wait for the
interpreter lock while the worker runs is not counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import openai

try:
    import httpx2 as httpx_mod  # openai >= 3
except ImportError:  # openai 2.x is built on httpx
    import httpx as httpx_mod

from tollmeter import Meter, MeterConfig

CHAT = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1795694866, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris.", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_07871e2ad8",
}


def sse(chunks: int, include_usage: bool) -> bytes:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1795694866,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_07871e2ad8"}
    extra = {"usage": None} if include_usage else {}
    lines = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" w{i}"}
        lines.append({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}], **extra})
    lines.append({**head, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], **extra})
    if include_usage:
        lines.append({**head, "choices": [], "usage": {"prompt_tokens": 14, "completion_tokens": chunks,
                                                        "total_tokens": 14 + chunks}})
    return "".join(f"data: {json.dumps(line)}\n\n" for line in lines).encode() + b"data: [DONE]\n\n"


def make_client(stream_chunks: int, latency: float = 0.0) -> openai.OpenAI:
    """An openai client over an in-process transport; `latency` seconds are slept before each
    answer, as a call waits for the network (the interpreter lock let go, the thread off the
    processor)."""
    with_usage, without_usage = sse(stream_chunks, True), sse(stream_chunks, False)
    chat = json.dumps(CHAT).encode()

    def handler(request):
        if latency:
            time.sleep(latency)
        body = json.loads(request.content)
        if body.get("stream"):
            wanted = (body.get("stream_options") or {}).get("include_usage")
            return httpx_mod.Response(200, content=with_usage if wanted else without_usage,
                                      headers={"content-type": "text/event-stream"})
        return httpx_mod.Response(200, content=chat, headers={"content-type": "application/json"})

    http_client = httpx_mod.Client(transport=httpx_mod.MockTransport(handler))
    return openai.OpenAI(api_key="bench", base_url="https://api.openai.com/v1", http_client=http_client, max_retries=0)


#: What `timed` reads: the wall clock, or the calling thread's CPU time (`--clock cpu`).
clock = time.perf_counter_ns


def timed(fn) -> float:
    start = clock()
    fn()
    return (clock() - start) / 1000


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def alternate(fn, meter: Meter, calls: int) -> tuple[list[float], list[float]]:
    """Bare and metered calls, alternating call by call; the per-call times of each.

    "Bare" is the SDK with tollmeter's wrapper installed but stepping aside at once (as it does
    for nested calls), so both sides see the same caches and machine load; the step-aside
    itself is measured separately (`wrapper_floor`). The background worker runs on its own
    schedule meanwhile, as in an application (nothing is flushed during the measurement), so
    its batches' share of the interpreter falls on both sides alike and shows in the p99.
    """
    bare, metered = [], []
    for i in range(calls * 2):
        meter.instrumenting = bool(i % 2)
        (metered if i % 2 else bare).append(timed(fn))
    meter.instrumenting = True
    return bare, metered


def blocks(fn, meter: Meter, calls: int, rounds: int = 10) -> tuple[list[float], list[float]]:
    """Truly unpatched and patched calls, alternating in blocks (patching is per class)."""
    bare, patched = [], []
    per_block = max(1, calls // rounds)
    for _ in range(rounds):
        meter.unpatch_all()
        bare += [timed(fn) for _ in range(per_block)]
        meter.patch_all()
        patched += [timed(fn) for _ in range(per_block)]
    return bare, patched


def wrapper_floor(meter: Meter, calls: int = 200_000) -> float:
    """Cost of an installed wrapper that steps aside: what "bare" in `alternate` still pays."""
    from tollmeter.instrument.call import sync_wrapper
    from tollmeter.instrument.openai import ChatCompletions

    wrapper = sync_wrapper(meter._hooks, ChatCompletions())
    meter.instrumenting = False
    target = lambda **kw: None  # noqa: E731
    start = time.perf_counter_ns()
    for _ in range(calls):
        wrapper(target, None, (), {})
    meter.instrumenting = True
    return (time.perf_counter_ns() - start) / 1000 / calls


def repeated(fn, meter: Meter, tenants, calls: int, repeat: int) -> None:
    """The alternating non-streamed cases `repeat` times: the median of each one's added µs,
    its range, and the difference from the tenant without a limit within each repeat."""
    added: dict[str, list[float]] = {tenant: [] for tenant, _ in tenants}
    for _ in range(repeat):
        for tenant, _ in tenants:
            token = meter.set_tenant(tenant)
            bare, metered = alternate(fn, meter, calls)
            meter.reset_tenant(token)
            added[tenant].append(statistics.median(metered) - statistics.median(bare))
    print(f"\nnon-streamed, alternating, repeated {repeat} times: added µs (median of the repeats, range)")
    base = added[tenants[0][0]]
    for tenant, label in tenants:
        values = added[tenant]
        line = f"  {label:<18}{statistics.median(values):>7.2f}   ({min(values):.2f} to {max(values):.2f})"
        if values is not base:
            line += f"   over no limit: {statistics.median([v - b for v, b in zip(values, base)]):.2f}"
        print(line)


def stream_lengths(meter: Meter, lengths: tuple[int, int], pairs: int, repeat: int) -> None:
    """A stream's added time split into its fixed part and its part per chunk: streams of two
    lengths, bare and metered alternating (as in `alternate`, the order flipped every pair), both
    lengths in the same minutes (more pairs of the short one, which costs less). Per chunk = the difference of the two lengths' added times over
    the difference of their chunk counts (the marginal cost of one more chunk); fixed = the short
    stream's added time less its chunks at that rate (the cost at zero chunks: starting the call,
    the reader, the hooks, recording it). Each of `repeat` rounds gives one estimate of each;
    printed: every round, then the median and range over the rounds."""
    short, long = lengths
    short_per_long = max(1, min(20, long // short))  # short streams are cheap: more of them
    clients = {n: make_client(n - 1) for n in lengths}  # n - 1 content chunks and the finish chunk
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    def stream_of(n):
        client = clients[n]

        def streamed():
            for _ in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True,
                                                    stream_options={"include_usage": True}):
                pass
        return streamed

    calls = {n: stream_of(n) for n in lengths}
    for n in lengths:
        for _ in range(5):
            calls[n]()
    print(f"\nstreams of {short} and {long} chunks, alternating, {pairs} pairs of {long} and {pairs * short_per_long} "
          f"of {short} per round, {repeat} rounds:")
    print(f"{'round':<8}{'added ' + str(short):>12}{'added ' + str(long):>12}{'per chunk':>11}{'fixed':>9}"
          f"{'bare ' + str(long):>12}")
    per_chunk, fixed = [], []
    for r in range(repeat):
        times: dict[tuple[int, bool], list[float]] = {(n, m): [] for n in lengths for m in (False, True)}
        for i in range(pairs):
            for j in range(1 + short_per_long):
                n = long if j == 0 else short
                order = (False, True) if (i + j) % 2 == 0 else (True, False)
                for metered in order:
                    meter.instrumenting = metered
                    times[n, metered].append(timed(calls[n]))
        meter.instrumenting = True
        added = {n: statistics.median(times[n, True]) - statistics.median(times[n, False]) for n in lengths}
        rate = (added[long] - added[short]) / (long - short)
        per_chunk.append(rate)
        fixed.append(added[short] - short * rate)
        print(f"{r + 1:<8}{added[short]:>12.2f}{added[long]:>12.2f}{rate:>11.3f}{fixed[-1]:>9.2f}"
              f"{statistics.median(times[long, False]):>12.1f}")
    print(f"per chunk: {statistics.median(per_chunk):.3f} µs ({min(per_chunk):.3f} to {max(per_chunk):.3f}); "
          f"fixed per stream: {statistics.median(fixed):.2f} µs ({min(fixed):.2f} to {max(fixed):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--no-store", dest="store", action="store_const", const=False, default=":memory:",
                        help="keep no events (the background worker then writes nothing to SQLite)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="repeat the alternating non-streamed cases this many times more")
    parser.add_argument("--small", type=float, default=40.0, help="the monthly limit of the small tenant, USD")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time calls by the wall clock or by the calling thread's CPU time")
    parser.add_argument("--lengths", default="11,1001",
                        help="the two stream lengths (chunks) whose difference gives the cost per chunk")
    parser.add_argument("--stream-pairs", type=int, default=20,
                        help="bare/metered pairs of each length per round of the per-chunk split")
    parser.add_argument("--stream-rounds", type=int, default=5, help="rounds of the per-chunk split")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="milliseconds the fake server waits before each answer (0: none, a busy caller; "
                             "not in the per-chunk split)")
    parser.add_argument("--only", choices=("plain", "streams"),
                        help="only the non-streamed cases (and --repeat), or only the stream cases")
    args = parser.parse_args()
    global clock
    clock = time.thread_time_ns if args.clock == "cpu" else time.perf_counter_ns

    client = make_client(args.chunks, args.latency / 1000)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    meter = Meter(MeterConfig(max_queue_size=1_000_000, store=args.store))
    meter.set_limit("acme-limited", 1_000_000, frequency="per_month")
    meter.set_limit("acme-small", args.small, frequency="per_month")

    def plain():
        client.chat.completions.create(model="gpt-4o", messages=messages)

    def streamed():
        for _ in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
            pass

    def streamed_with_usage():  # the caller asks for usage: the server sends the same bytes either way
        for _ in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True,
                                                stream_options={"include_usage": True}):
            pass

    for _ in range(50):
        plain()
        streamed()
    meter.patch_all()
    chunks = args.chunks + 1
    print(f"openai {openai.__version__}; {args.calls} calls per case; streams of {chunks} chunks; "
          f"store {'in memory' if args.store else 'off'}; clock {args.clock}; latency {args.latency:g} ms")
    print(f"{'case':<46}{'bare µs':>9}{'metered':>9}{'added µs':>10}{'ratio':>7}{'bare p99':>10}{'p99':>9}")

    def row(name, bare, metered, per=1):
        b, m = statistics.median(bare), statistics.median(metered)
        print(f"{name:<46}{b:>9.1f}{m:>9.1f}{(m - b) / per:>10.2f}{m / b:>7.3f}{p99(bare):>10.1f}{p99(metered):>9.1f}")

    tenants = (("acme", "no limit"), ("acme-limited", "with a limit"), ("acme-small", f"with a ${args.small:g} limit"))
    if args.only != "streams":
        for tenant, label in tenants:
            token = meter.set_tenant(tenant)
            for _ in range(200):  # the tenant's first calls (the store is asked once, then memory)
                plain()
            row(f"non-streamed, {label}, alternating", *alternate(plain, meter, args.calls))
            row(f"non-streamed, {label}, unpatched vs patched", *blocks(plain, meter, args.calls))
            meter.reset_tenant(token)
    if args.only != "plain":
        token = meter.set_tenant("acme")
        stream_calls = max(100, args.calls // 10)
        row(f"streamed, per chunk of {chunks}, alternating", *alternate(streamed_with_usage, meter, stream_calls),
            per=chunks)
        row(f"streamed, per chunk of {chunks}, unpatched vs patched",
            *blocks(streamed_with_usage, meter, stream_calls), per=chunks)
        row("streamed + usage chunk asked for us", *blocks(streamed, meter, stream_calls))
        short, long = (int(n) for n in args.lengths.split(","))
        stream_lengths(meter, (short, long), args.stream_pairs, args.stream_rounds)
        meter.reset_tenant(token)
    if args.repeat > 1 and args.only != "streams":
        repeated(plain, meter, tenants, args.calls, args.repeat)
    print(f"wrapper stepping aside: {wrapper_floor(meter):.2f} µs per call")
    # Whether the background worker kept up with the calls (it did not, before 2026-12-06's
    # `BatchWorker._make_way`: a busy caller kept it from the interpreter lock).
    print(f"events still queued when the calls ended: {meter.stats()['queued']}")
    assert meter.flush(60)
    stats = meter.stats()
    print(f"events recorded: {stats['recorded']}, dropped: {stats['dropped']}, faults: {stats['faults']}")
    meter.shutdown()


if __name__ == "__main__":
    main()
