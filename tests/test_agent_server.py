"""Agents against a real ingest server process (SQLite and PostgreSQL): limits shared by several
app processes through the server's budget leases, and every event arriving exactly once while
the server is stopped and restarted."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai

from tollmeter import LimitExceededException, Meter, MeterConfig

from .server_support import _WORK, Server, database_for, free_port, wait_ready
from .test_limits_concurrency import billed  # the provider: usage below the reservation

pytest_plugins = ["tests.server_harness"]
# Not marked `sdk`: the SDK is only the vehicle here (its subject is the limits client), run once.


CHAT = "https://api.openai.com/v1/chat/completions"
LIMIT = Decimal("0.05")


#: The strict bound (spent <= limit) is the worst_case policy's (adaptive's is looser), for calls
#: the server answered: this overloaded 2-core box answers slower than the default limits_wait,
#: past which "open" lets calls through, so the first test waits for the server; the second
#: keeps the default wait and fails closed (docs/limits.md, "When the server does not answer").
WAIT_FOR_THE_SERVER = {"limits_wait": 30}


def _app_process(base: str, key: str, index: int, spool: str, queue, options: dict = WAIT_FOR_THE_SERVER) -> None:
    """One instance of the app: its own meter (events and leases from the server), 8 threads."""
    try:
        from .conftest import mock_http

        with mock_http() as router:
            router.route(host="127.0.0.1").pass_through()  # the metering server is real
            provider = router.post(CHAT).mock(side_effect=billed)
            client = openai.OpenAI(api_key="k", max_retries=0)
            # One call before the meter and the threads: the SDK's response models are built
            # on first use, and 8 threads doing that at once can race inside pydantic
            # ("BaseModel cannot be instantiated directly", seen once with openai 2.x).
            client.chat.completions.create(model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
            provider.reset()
            meter = Meter(MeterConfig(url=f"{base}/v1/ingest", api_key=key, flush_interval=0.05,
                                      spool_dir=spool, reservation="worst_case", **options))
            meter.patch("openai")

            def worker(t):
                sent = refused = 0
                with meter.for_tenant("acme"):
                    for j in range(200):
                        try:
                            client.chat.completions.create(
                                model="gpt-4o", max_tokens=20 + (index * 97 + t * 37 + j * 53) % 300,
                                messages=[{"role": "user", "content": f"q {index}-{t}-{j} " + "x" * (j % 70)}])
                        except LimitExceededException as exc:
                            if exc.limit == "server unreachable":  # "closed": no answer in time
                                time.sleep(0.01)  # the answer, when it comes, serves later calls
                                continue
                            refused += 1
                            if refused >= 4:
                                break
                        else:
                            sent += 1
                return sent, refused

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(worker, range(8)))
            assert meter.flush(30)
            meter.shutdown()
            stats = meter.stats()
        queue.put(("ok", sum(s for s, _ in results), sum(r for _, r in results), provider.call_count,
                   stats["spooled"], stats["failed"]))
    except BaseException as exc:  # report, never leave the parent waiting
        queue.put(("error", repr(exc), 0, 0, 0, 0))


def _run_apps(api, tmp_path, options: dict) -> Decimal:
    """3 app processes of 8 threads spending against acme's daily limit on the server: checks
    that every call that reached the provider is on the server once; returns the spend."""
    response = api.http.put("/v1/limits/acme", json={"limit_usd": str(LIMIT), "frequency": "per_day"})
    assert response.status_code == 200, response.text
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_app_process,
                                 args=(api.server.base, api.key, i, str(tmp_path / f"spool-{i}"), queue, options))
                 for i in range(3)]
    for p in processes:
        p.start()
    results = [queue.get(timeout=240) for _ in processes]
    for p in processes:
        p.join(30)
    assert all(r[0] == "ok" for r in results), results
    sent, refused, provider_calls = (sum(r[k] for r in results) for k in (1, 2, 3))
    assert sum(r[4] for r in results) == 0 and sum(r[5] for r in results) == 0  # nothing spooled or failed
    assert refused > 0 and sent > 0 and sent == provider_calls
    assert api.count() == sent  # every call that reached the provider is on the server, once
    daily = next(limit for limit in api.spend("acme")["limits"] if limit["frequency"] == "per_day")
    return Decimal(daily["spent_usd"])


def test_app_processes_share_the_servers_limits(api, tmp_path):
    spent = _run_apps(api, tmp_path, WAIT_FOR_THE_SERVER)
    assert spent <= LIMIT, f"{spent} spent past the limit of {LIMIT}"
    assert spent >= LIMIT * Decimal("0.7"), f"only {spent} of {LIMIT} spent"


def test_closed_keeps_the_servers_limit_at_the_default_wait(api, tmp_path):
    """The default limits_wait (50 ms): calls the server did not answer in time are refused."""
    spent = _run_apps(api, tmp_path, {"limits_unreachable": "closed"})
    assert spent <= LIMIT, f"{spent} spent past the limit of {LIMIT}"


def _serve(url: str, port: int) -> Server:
    log = _WORK / f"restart-{port}.log"
    args = [sys.executable, "-m", "tollmeter.server", "serve", "--database-url", url, "--port", str(port),
            "--log-level", "warning", "--no-access-log"]
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    return wait_ready(Server("restart", url, f"http://127.0.0.1:{port}", process, log))


def test_server_stopped_and_restarted_every_event_arrives_once(backend, tmp_path):
    url, drop = database_for(backend)
    port = free_port()
    server = _serve(url, port)
    try:
        key = server.key("restart-test")
        meter = Meter(MeterConfig(url=f"{server.base}/v1/ingest", api_key=key, flush_interval=60,
                                  max_retries=1, retry_backoff=0.01, spool_dir=str(tmp_path / "spool")))

        def record(n, tenant):
            return [meter.track_manually(provider="openai", model="gpt-4o", input_tokens=100 + i, output_tokens=10,
                                         tenant_id=tenant).event_id for i in range(n)]

        before = record(5, "before")
        assert meter.flush(30)
        server.process.terminate()  # the server goes away while the app runs
        server.process.wait(30)
        during = record(7, "during")
        assert meter.flush(30)
        assert meter.stats()["spooled"] == 7 and meter.stats()["failed"] == 0

        server = _serve(url, port)  # back, on the same database
        meter._delivery.sink.down_until = 0.0  # the next probe is due now (it would be within seconds)
        meter._pipeline.upkeep()
        after = record(3, "after")
        assert meter.flush(30)
        meter.shutdown()
        assert meter.stats()["replayed"] == 7

        store = server.store.for_project("restart-test")
        rows = store.usage(group_by=["tenant_id"])
        assert {r["tenant_id"]: r["calls"] for r in rows} == {"before": 5, "during": 7, "after": 3}
        assert store.count_events() == len(set(before + during + after)) == 15
        # each priced on arrival: 100..104 input at $2.50/M and 10 output at $10/M, for "before"
        expected = sum((100 + i) * Decimal("2.50") + 10 * Decimal(10) for i in range(5)) / 1_000_000
        assert next(r for r in rows if r["tenant_id"] == "before")["cost_usd"] == expected
    finally:
        server.stop()
        drop()
