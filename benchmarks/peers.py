"""Added time per call on the caller's thread: tollmeter against its PyPI peers, one process, one run.

Peers (`pip install -e ".[bench]"`):

* token-limit: `Meter(MeterConfig(api_key=...)).patch_all()` monkey-patches openai at class
  level like tollmeter; calls inside `with meter.for_tenant(t):`. Per call: a limit check
  (an HTTP GET to its SaaS backend, cached 5 s per tenant), an `LLMEvent` dataclass with a uuid4
  appended to a deque; every 50th call POSTs the batch *on the caller's thread*. Limits live in
  that backend (`set_limit` is an HTTP POST). The backend is stubbed here by an in-process
  `httpx.MockTransport` on token-limit's shared httpx client, so its network costs are a floor.
* llm-toll: a decorator, `@track_costs(project=t, max_budget=...)`, on the caller's own function
  (the project is fixed when decorating: one decorated function per tenant). Per call: parses
  usage from the response, prices it, and writes a SQLite transaction (INSERT + UPSERT) on the
  caller's thread; with a budget also one SELECT before the call. Its per-call stderr cost line is
  turned off (`CostReporter(enabled=False)`); its database is a file in a temporary directory.

The SDK talks to an in-process mock transport (no sockets; see overhead.py). Every case runs in
blocks, the cases' blocks alternating round by round, so machine noise hits all sides alike;
tollmeter is patched only during its own blocks and token-limit only during its own (neither
stacks on the other; checked before every block). tollmeter's worker runs on its own schedule
(its batches share the interpreter with whatever case runs then, as in an application);
token-limit's queue is left alone too, since every 50th call POSTs its batch inline. Streams: the caller
asks for usage (`stream_options.include_usage`), so the same bytes reach every side; the added
time is divided by the chunks yielded. A side that fails is shown as n/a with the reason.

    .venv/bin/python benchmarks/peers.py [--calls 2000] [--chunks 100] [--stream-calls N] [--block 20]
                                         [--clock wall|cpu]

`--clock cpu` times each call by the calling thread's own CPU time (`time.thread_time_ns`), so
that other processes' load does not stretch it; time a side spends blocked (a peer's SQLite
write waiting on the disk, tollmeter's caller waiting for the interpreter lock while its worker
runs) is then not counted.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from importlib import metadata
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import openai  # noqa: E402
import openai.resources.chat.completions as chat_mod  # noqa: E402
from overhead import make_client  # noqa: E402  (the SDK over an in-process mock transport)

import tollmeter  # noqa: E402
from tollmeter import Meter, MeterConfig  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
LIMIT_USD = 1_000_000
TENANT, LIMITED = "acme", "acme-limited"
PRISTINE = {cls: cls.__dict__["create"] for cls in (chat_mod.Completions, chat_mod.AsyncCompletions)}


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def assert_pristine(case: str) -> None:
    """The SDK's own method is in place: nobody's wrapper is installed (so none can stack)."""
    for cls, original in PRISTINE.items():
        if cls.__dict__["create"] is not original:
            raise RuntimeError(f"{cls.__qualname__}.create is still patched before the {case!r} block")


class Case:
    """One side of the comparison: how to switch it on/off and how it makes one call."""

    def __init__(self, name: str, call: Callable[[], Any] | None, stream: Callable[[], Any] | None,
                 on: Callable[[], Any] = lambda: None, off: Callable[[], Any] = lambda: None,
                 na: str | None = None, stream_na: str | None = None, patches: bool = False) -> None:
        self.name, self.on, self.off, self.patches = name, on, off, patches
        self.fns = {"call": call, "stream": stream}
        self.na = {"call": na, "stream": stream_na or na}
        self.times: dict[str, list[float]] = {"call": [], "stream": []}


#: What calls are timed by: the wall clock, or the calling thread's CPU time (`--clock cpu`).
clock = time.perf_counter_ns


def measure(cases: list[Case], kind: str, calls: int, block: int, warm_up: int = 10) -> None:
    """`calls` timed calls per case, in blocks of `block` calls; the cases' blocks alternate and
    their order rotates from round to round. A first, untimed round warms every case up; every
    block starts with one untimed call (after patching)."""
    per_block = max(1, min(block, calls))
    rounds = max(1, calls // per_block)
    live = [c for c in cases if c.na[kind] is None]
    for r in range(-1, rounds):
        warm, timed_calls = (warm_up, 0) if r < 0 else (1, per_block)
        for case in live[r % len(live):] + live[:r % len(live)]:
            if case.na[kind] is not None:  # failed in an earlier round
                continue
            fn, times = case.fns[kind], case.times[kind]
            try:
                if not case.patches:
                    assert_pristine(case.name)
                try:
                    case.on()
                    for _ in range(warm):
                        fn()
                    for _ in range(timed_calls):
                        start = clock()
                        fn()
                        times.append((clock() - start) / 1000)
                finally:
                    case.off()
            except Exception as exc:  # a side that breaks is reported, not fatal to the others
                case.na[kind] = f"failed: {type(exc).__name__}: {exc}"


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def table(cases: list[Case], kind: str, per: int = 1) -> None:
    unit = "µs/chunk" if per > 1 else "µs"
    print(f"{'case':<44}{'median µs':>11}{'added ' + unit:>16}{'ratio':>8}{'p99 µs':>10}{'mean µs':>10}")
    bare = statistics.median(cases[0].times[kind])
    for case in cases:
        if case.na[kind] is not None:
            print(f"{case.name:<44}{'n/a':>11}   {case.na[kind]}")
            continue
        t = case.times[kind]
        med = statistics.median(t)
        print(f"{case.name:<44}{med:>11.1f}{(med - bare) / per:>16.2f}{med / bare:>8.3f}"
              f"{p99(t):>10.1f}{statistics.fmean(t):>10.1f}")


# -- the peers ---------------------------------------------------------------------------------

class TokenLimitBackend:
    """token-limit's SaaS backend (ingest, thresholds, check-tenant-limit), answered in-process."""

    def __init__(self) -> None:
        import httpx  # token-limit's own HTTP client library (httpx > requests > urllib)
        from token_limit.transport.http_client import HttpClient

        self.limits: dict[str, Any] = {}
        self.ingested = self.checks = self.posts_on_caller = 0
        self.caller = None
        HttpClient._httpx_client = httpx.Client(transport=httpx.MockTransport(self.handle))
        HttpClient._backend = "httpx"

    def handle(self, request):
        import json
        import threading

        import httpx

        path = request.url.path
        if path.endswith("/check-tenant-limit"):
            self.checks += 1
            tenant = request.url.params.get("tenant_id")
            return httpx.Response(200, json={"limit_exceeded": False,
                                             "remaining_tokens": 10**9 if tenant in self.limits else None})
        body = json.loads(request.content)
        if path.endswith("/thresholds"):
            self.limits[body["tenant_id"]] = body
        elif path.endswith("/ingest"):
            self.ingested += len(body["events"])
            if threading.current_thread() is self.caller:
                self.posts_on_caller += 1
        return httpx.Response(200, json={})


def token_limit_cases(client: openai.OpenAI, notes: list[str]) -> tuple[list[Case], Callable[[], None], Any]:
    try:
        import token_limit
    except ImportError:
        na = "token-limit is not installed (pip install -e '.[bench]')"
        cases = [Case("token-limit", None, None, na=na),
                 Case("token-limit, $1M/month limit (server-side)", None, None, na=na)]
        return cases, lambda: None, None
    backend = TokenLimitBackend()
    backend.caller = threading.current_thread()
    tl = token_limit.Meter(token_limit.MeterConfig(api_key="bench", patches=["openai"]))
    tl.set_limit(LIMITED, LIMIT_USD, frequency=token_limit.PER_MONTH)

    def make(tenant: str, stream: bool) -> Callable[[], None]:
        if stream:
            def fn() -> None:
                with tl.for_tenant(tenant):
                    for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                            stream_options={"include_usage": True}):
                        pass
        else:
            def fn() -> None:
                with tl.for_tenant(tenant):
                    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return fn

    # Its queue is not drained between blocks: every 50th event is POSTed inside the call that
    # queued it, on the caller's thread, and that is part of what it costs. (Its background thread
    # also POSTs what is queued every 5 s: one stub request, wherever it lands.)
    cases = [Case("token-limit", make(TENANT, False), make(TENANT, True), on=tl.patch_all, off=tl.unpatch_all),
             Case("token-limit, $1M/month limit (server-side)", make(LIMITED, False), make(LIMITED, True),
                  on=tl.patch_all, off=tl.unpatch_all)]

    def report() -> None:
        notes.append(f"token-limit: {backend.ingested} events ingested by the stub backend "
                     f"(+{len(tl._queue._queue)} still queued), "
                     f"{backend.posts_on_caller} ingest POSTs made inside a call (on the caller's thread), "
                     f"{backend.checks} limit-check GETs; limits held by the backend: {sorted(backend.limits)}")
        tl.unpatch_all()
        tl._queue.shutdown()

    def scope() -> None:
        with tl.for_tenant(TENANT):
            pass

    return cases, report, scope


def llm_toll_cases(client: openai.OpenAI, notes: list[str], tmp: str) -> tuple[list[Case], Callable[[], None]]:
    try:
        import llm_toll
    except ImportError:
        na = "llm-toll is not installed (pip install -e '.[bench]')"
        return [Case("llm-toll", None, None, na=na), Case("llm-toll, $1M budget", None, None, na=na)], lambda: None
    store = llm_toll.SQLiteStore(db_path=os.path.join(tmp, "llm_toll.db"))  # default: ~/.llm_toll.db
    llm_toll.set_store(store)
    llm_toll.set_reporter(llm_toll.CostReporter(enabled=False))  # default: a line on stderr per call

    def create(**kwargs: Any) -> Any:  # the caller's function that llm-toll decorates
        return client.chat.completions.create(**kwargs)

    # One decorated function per tenant ("project"): the project is fixed at decoration time.
    tracked = {TENANT: llm_toll.track_costs(project=TENANT)(create),
               LIMITED: llm_toll.track_costs(project=LIMITED, max_budget=LIMIT_USD)(create)}

    def make(tenant: str, stream: bool) -> Callable[[], None]:
        if stream:
            def fn() -> None:
                for _ in tracked[tenant](model="gpt-4o", messages=MESSAGES, stream=True,
                                         stream_options={"include_usage": True}):
                    pass
        else:
            def fn() -> None:
                tracked[tenant](model="gpt-4o", messages=MESSAGES)
        return fn

    cases = [Case("llm-toll", make(TENANT, False), make(TENANT, True)),
             Case("llm-toll, $1M budget (lifetime)", make(LIMITED, False), make(LIMITED, True))]

    def report() -> None:
        rows = {s["project"]: s for s in store.get_all_project_summaries()}
        notes.append("llm-toll: " + ", ".join(
            f"{p}: {rows[p]['call_count']} rows, ${rows[p]['total_cost']:.4f}" for p in sorted(rows)))
        store.close()

    return cases, report


# -- tollmeter ---------------------------------------------------------------------------------

def tollmeter_cases(client: openai.OpenAI) -> tuple[list[Case], Meter | None]:
    try:
        meter = Meter(MeterConfig(store=":memory:"))
        meter.set_limit(LIMITED, LIMIT_USD, frequency="per_month")
    except Exception as exc:
        na = f"failed: {type(exc).__name__}: {exc}"
        return [Case("tollmeter", None, None, na=na), Case("tollmeter, $1M/month limit", None, None, na=na)], None

    def make(tenant: str, stream: bool) -> Callable[[], None]:
        if stream:
            def fn() -> None:
                with meter.for_tenant(tenant):
                    for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                            stream_options={"include_usage": True}):
                        pass
        else:
            def fn() -> None:
                with meter.for_tenant(tenant):
                    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return fn

    def off() -> None:
        meter.unpatch_all()  # its worker goes on with what is queued, on its own schedule

    cases = [Case("tollmeter", make(TENANT, False), make(TENANT, True), on=meter.patch_all, off=off, patches=True),
             Case("tollmeter, $1M/month limit", make(LIMITED, False), make(LIMITED, True),
                  on=meter.patch_all, off=off, patches=True)]
    return cases, meter


def scope_costs(scopes: dict[str, Callable[[], None]], n: int = 100_000) -> str:
    def per(fn: Callable[[], None]) -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return (time.perf_counter_ns() - start) / 1000 / n

    out = [f"{name} {per(fn):.2f} µs" for name, fn in scopes.items()]
    return ", ".join(out + ["llm-toll: none (one decorated function per tenant)"])


# -- memory held per queued call --------------------------------------------------------------

def retained(fn: Callable[[], None], calls: int) -> float:
    """Bytes still allocated per call after `calls` calls (tracemalloc, after a full collection)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(calls):
        fn()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / calls


def memory(client: openai.OpenAI, calls: int) -> None:
    def plain() -> None:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    print(f"\nmemory held per queued call ({calls} calls, the worker not yet run; tracemalloc):")
    for _ in range(20):
        plain()
    print(f"  {'bare SDK (nothing queued)':<42}{retained(plain, calls):>9.0f} B/call")
    for tenant, label in ((TENANT, "tollmeter"), (LIMITED, "tollmeter, $1M/month limit")):
        meter = None
        try:
            meter = Meter(MeterConfig(store=":memory:", flush_interval=3600, max_batch_size=10**9,
                                      max_queue_size=10 * calls + 100))
            if tenant == LIMITED:
                meter.set_limit(LIMITED, LIMIT_USD, frequency="per_month")
            meter.patch_all()

            def call(tenant: str = tenant) -> None:
                with meter.for_tenant(tenant):
                    plain()

            for _ in range(20):
                call()
            meter.flush(30)  # the warm-up calls are handled; the worker now sleeps for an hour
            per = retained(call, calls)
            queued = meter.stats()["queued"]
            note = "" if queued == calls else f"  (but only {queued} were still queued: the worker ran)"
            print(f"  {label:<42}{per:>9.0f} B/call, {queued} queued{note}")
        except Exception as exc:
            print(f"  {label:<42}      n/a  failed: {type(exc).__name__}: {exc}")
        finally:
            if meter is not None:
                meter.flush(60)
                meter.shutdown()  # also unpatches
    try:
        import token_limit
    except ImportError:
        return
    tl = token_limit.Meter(token_limit.MeterConfig(api_key="bench", patches=["openai"], flush_interval=3600,
                                                   max_batch_size=10**9, max_queue_size=10**9))
    tl.patch_all()

    def tl_call() -> None:
        with tl.for_tenant(TENANT):
            plain()

    for _ in range(20):
        tl_call()
    tl._queue.flush_now()
    per = retained(tl_call, calls)
    queued = len(tl._queue._queue)
    tl.unpatch_all()
    tl._queue.shutdown()
    print(f"  {'token-limit (for comparison)':<42}{per:>9.0f} B/call, {queued} queued")


# -- main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed non-streamed calls per case")
    parser.add_argument("--chunks", type=int, default=100, help="content chunks per stream")
    parser.add_argument("--stream-calls", type=int, default=None, help="timed streams per case (default calls/10)")
    parser.add_argument("--block", type=int, default=20, help="calls per block (blocks of all cases alternate)")
    parser.add_argument("--stream-block", type=int, default=2, help="streams per block")
    parser.add_argument("--mem-calls", type=int, default=1000, help="queued calls for the memory measurement")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time calls by the wall clock or by the calling thread's CPU time (a loaded machine)")
    args = parser.parse_args()
    global clock
    clock = time.thread_time_ns if args.clock == "cpu" else time.perf_counter_ns
    stream_calls = args.stream_calls or max(50, args.calls // 10)

    client = make_client(args.chunks)
    notes: list[str] = []

    def bare_call() -> None:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def bare_stream() -> None:
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True}):
            pass

    chunks = sum(1 for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                           stream_options={"include_usage": True}))
    with tempfile.TemporaryDirectory(prefix="tollmeter-peers-") as tmp:
        assert_pristine("setup")
        tm_cases, meter = tollmeter_cases(client)
        tl_cases, tl_report, tl_scope = token_limit_cases(client, notes)
        lt_cases, lt_report = llm_toll_cases(client, notes, tmp)
        cases = [Case("bare openai", bare_call, bare_stream), *tm_cases, *tl_cases, *lt_cases]

        print(f"python {sys.version.split()[0]}, openai {openai.__version__}, tollmeter {tollmeter.__version__}, "
              f"token-limit {version('token-limit')}, llm-toll {version('llm-toll')}")
        print(f"{args.calls} calls per case in alternating blocks of {args.block}; {stream_calls} streams of "
              f"{chunks} chunks per case in blocks of {args.stream_block}; clock {args.clock}\n")
        start = time.monotonic()
        measure(cases, "call", args.calls, args.block)
        print("non-streamed chat.completions.create, per call:")
        table(cases, "call")
        measure(cases, "stream", stream_calls, args.stream_block)
        print(f"\nstreamed (stream=True, include_usage asked by the caller), added per chunk of {chunks}:")
        table(cases, "stream", per=chunks)
        took = time.monotonic() - start

        scopes = {}
        if meter is not None:
            def tm_scope() -> None:
                with meter.for_tenant(TENANT):
                    pass

            scopes["tollmeter"] = tm_scope
            stats = meter.stats()
            notes.insert(0, f"tollmeter: recorded {stats['recorded']}, dropped {stats['dropped']}, "
                            f"faults {stats['faults']}, unpriced {stats['unpriced']}")
        if tl_scope is not None:
            scopes["token-limit"] = tl_scope
        print(f"\ntenant scope alone (enter + exit, included above in every call): {scope_costs(scopes)}")
        if meter is not None:
            meter.shutdown()
        tl_report()
        lt_report()
        print()
        for note in notes:
            print(note)
        print(f"timed part: {took:.0f} s")
        memory(client, args.mem_calls)


if __name__ == "__main__":
    main()
