"""Tenant scopes: context managers, decorators, nesting, threads, tasks, and metered calls in them."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tollmeter import Meter, MeterConfig, carry_scope, current_scope

from .conftest import Recorder

pytestmark = pytest.mark.sdk

CHAT_URL = "https://api.openai.com/v1/chat/completions"
BODY = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def ask(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


@pytest.fixture
def meter():
    m = Meter(MeterConfig())
    yield m
    m.shutdown()


def test_context_manager_sets_and_restores(meter):
    assert current_scope() is None
    with meter.for_tenant("acme", run_id="r1", agent_id="a1", tags={"plan": "pro"}) as scope:
        assert scope.tenant_id == "acme" and scope.run_id == "r1" and scope.agent_id == "a1"
        assert dict(current_scope().tags) == {"plan": "pro"}
        with meter.for_tenant("globex"):
            assert current_scope().tenant_id == "globex"
            assert current_scope().run_id is None  # another tenant: nothing inherited
        assert current_scope() is scope
    assert current_scope() is None


def test_nested_scope_of_same_tenant_refines_outer(meter):
    with meter.for_tenant("acme", run_id="r1", tags={"plan": "pro", "region": "eu"}):
        with meter.for_tenant("acme", agent_id="planner", tags={"region": "us"}):
            scope = current_scope()
            assert (scope.tenant_id, scope.run_id, scope.agent_id) == ("acme", "r1", "planner")
            assert dict(scope.tags) == {"plan": "pro", "region": "us"}
        assert current_scope().agent_id is None


def test_scope_restored_when_body_raises(meter):
    with pytest.raises(RuntimeError):
        with meter.for_tenant("acme"):
            raise RuntimeError("boom")
    assert current_scope() is None


async def test_async_context_manager(meter):
    async with meter.for_tenant("acme") as scope:
        await asyncio.sleep(0)
        assert current_scope() is scope
    assert current_scope() is None


def test_decorator_sync_and_async(meter):
    @meter.for_tenant("acme", run_id="job-7")
    def work(x):
        return current_scope().tenant_id, current_scope().run_id, x

    @meter.for_tenant("globex")
    async def awork():
        await asyncio.sleep(0)
        return current_scope().tenant_id

    assert work(1) == ("acme", "job-7", 1)
    assert current_scope() is None
    assert asyncio.run(awork()) == "globex"
    assert work.__name__ == "work"


def test_decorating_a_generator_is_refused(meter):
    with pytest.raises(TypeError, match="generator"):
        @meter.for_tenant("acme")
        def gen():
            yield 1


def test_set_tenant_and_reset(meter):
    token = meter.set_tenant("acme", agent_id="support-bot")
    assert current_scope().tenant_id == "acme"
    meter.reset_tenant(token)
    assert current_scope() is None


def test_bad_scope_values_rejected(meter):
    with pytest.raises(TypeError):
        meter.for_tenant(42)
    with pytest.raises(TypeError):
        meter.for_tenant("acme", tags=["not", "a", "mapping"])


def test_scopes_are_isolated_across_threads(meter):
    barrier = threading.Barrier(8)
    seen: dict[str, list] = {}

    def worker(name):
        with meter.for_tenant(name):
            barrier.wait()  # all threads are inside their scopes at once
            seen[name] = [current_scope().tenant_id for _ in range(100)]

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(values == [name] * 100 for name, values in seen.items())
    assert len(seen) == 8


async def test_scopes_are_isolated_across_tasks(meter):
    async def task(name):
        async with meter.for_tenant(name):
            for _ in range(20):
                await asyncio.sleep(0)
                assert current_scope().tenant_id == name
            return name

    assert await asyncio.gather(*(task(f"t{i}") for i in range(50))) == [f"t{i}" for i in range(50)]


def test_carry_scope_into_an_executor(meter):
    with ThreadPoolExecutor(2) as pool:
        with meter.for_tenant("acme", run_id="r9"):
            carried = pool.submit(carry_scope(lambda: current_scope())).result()
            plain = pool.submit(lambda: current_scope()).result()
    assert (carried.tenant_id, carried.run_id) == ("acme", "r9")
    assert plain is None


# -- metered calls made in scopes ---------------------------------------------------------------


def test_call_outside_scope_is_recorded_with_no_tenant(recorder, http_mock):
    http_mock.post(CHAT_URL).respond(json=BODY)
    ask(openai.OpenAI(api_key="sk-test"))
    assert recorder.one().tenant_id is None


def test_default_tenant_for_calls_outside_scope(http_mock):
    rec = Recorder(default_tenant="house")
    rec.meter.patch("openai")
    try:
        http_mock.post(CHAT_URL).respond(json=BODY)
        client = openai.OpenAI(api_key="sk-test")
        ask(client)
        with rec.meter.for_tenant("acme"):
            ask(client)
        assert [e.tenant_id for e in rec.recorded()] == ["house", "acme"]
    finally:
        rec.meter.shutdown()


def test_scope_fields_reach_the_event(recorder, http_mock):
    http_mock.post(CHAT_URL).respond(json=BODY)
    with recorder.meter.for_tenant("acme", run_id="r1", agent_id="triage", tags={"plan": "pro"}):
        ask(openai.OpenAI(api_key="sk-test"))
    event = recorder.one()
    assert (event.tenant_id, event.run_id, event.agent_id, dict(event.tags)) == (
        "acme", "r1", "triage", {"plan": "pro"})


def test_metered_calls_from_many_threads_keep_their_tenant(recorder, http_mock):
    http_mock.post(CHAT_URL).respond(json=BODY)
    client = openai.OpenAI(api_key="sk-test")  # one client shared by every thread

    def worker(i):
        with recorder.meter.for_tenant(f"tenant-{i % 4}", run_id=f"run-{i}"):
            ask(client)
            return f"tenant-{i % 4}", f"run-{i}"

    with ThreadPoolExecutor(16) as pool:
        expected = sorted(pool.map(worker, range(64)))
    assert sorted((e.tenant_id, e.run_id) for e in recorder.recorded()) == expected


async def test_metered_calls_from_many_tasks_keep_their_tenant(recorder, http_mock):
    http_mock.post(CHAT_URL).respond(json=BODY)
    client = openai.AsyncOpenAI(api_key="sk-test")

    async def task(i):
        async with recorder.meter.for_tenant(f"tenant-{i}"):
            await asyncio.sleep(0)
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])

    await asyncio.gather(*(task(i) for i in range(40)))
    assert sorted(e.tenant_id for e in recorder.recorded()) == sorted(f"tenant-{i}" for i in range(40))
