"""Agent frameworks on top of the provider SDKs: each model call they make is metered once, for
the tenant of the scope the framework runs in, including in the tasks and threads it starts.

The frameworks are driven for real (OpenAI Agents SDK, LangChain's `langchain-openai` and
`langchain-anthropic`, pydantic-ai) with provider HTTP mocked at the transport (respx), on the
bodies the OpenAI and Anthropic APIs send. tollmeter instruments the provider SDKs the
frameworks call (`openai`, `anthropic`); nothing framework-specific is patched. A framework
that is not installed is skipped.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tollmeter import carry_scope

from .bodies import anthropic_bodies as A
from .bodies import openai_bodies as O

pytestmark = pytest.mark.sdk

OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
OPENAI_RESPONSES = "https://api.openai.com/v1/responses"
ANTHROPIC = "https://api.anthropic.com/v1/messages"


def replies(*bodies, headers=O.HEADERS):
    """A respx side effect answering with `bodies` in turn (a tool call, then the answer)."""
    pending = iter(bodies)
    return lambda request: httpx.Response(200, json=next(pending), headers=headers)


def tenants(events):
    return sorted((e.tenant_id or "-") for e in events)


# -- OpenAI Agents SDK ---------------------------------------------------------------------------


@pytest.fixture
def agents_sdk():
    agents = pytest.importorskip("agents")
    import openai

    def model():
        return agents.OpenAIResponsesModel("gpt-4.1", openai.AsyncOpenAI(api_key="sk-test", max_retries=0))

    @agents.function_tool
    def get_weather(location: str) -> str:
        """The weather at a place."""
        return f"Sunny in {location}"

    agents.model, agents.get_weather = model, get_weather  # for the tests below
    return agents


def test_openai_agents_run_with_tool_calls(recorder, http_mock, agents_sdk):
    """A run that calls a tool is two model calls (the tool calls, then the answer): two events,
    both for the run's tenant and agent, none from the SDK's own tracing (disabled here)."""
    route = http_mock.post(OPENAI_RESPONSES).mock(side_effect=replies(O.RESPONSES_TOOL_CALLS, O.RESPONSES_PLAIN))
    agent = agents_sdk.Agent(name="weather", model=agents_sdk.model(), tools=[agents_sdk.get_weather])
    with recorder.meter.for_tenant("acme", agent_id="weather", run_id="ticket-1"):
        result = agents_sdk.Runner.run_sync(agent, "Weather in Paris and Bogotá?",
                                            run_config=agents_sdk.RunConfig(tracing_disabled=True))
    assert result.final_output.startswith("In a quiet forest glade")
    events = recorder.recorded()
    assert route.call_count == len(events) == 2
    assert [(e.tenant_id, e.agent_id, e.run_id) for e in events] == [("acme", "weather", "ticket-1")] * 2
    assert [(e.endpoint, e.tool_calls, e.usage.input_tokens) for e in events] == [
        ("responses", 2, 291), ("responses", 0, 36)]


async def test_openai_agents_concurrent_runs_keep_their_tenants(recorder, http_mock, agents_sdk):
    http_mock.post(OPENAI_RESPONSES).respond(json=O.RESPONSES_PLAIN, headers=O.HEADERS)
    agent = agents_sdk.Agent(name="writer", model=agents_sdk.model())

    async def run(tenant):
        async with recorder.meter.for_tenant(tenant):
            await agents_sdk.Runner.run(agent, "A story", run_config=agents_sdk.RunConfig(tracing_disabled=True))

    await asyncio.gather(run("acme"), run("globex"), run("initech"))
    assert tenants(recorder.recorded()) == ["acme", "globex", "initech"]


async def test_openai_agents_streamed_run(recorder, http_mock, agents_sdk):
    http_mock.post(OPENAI_RESPONSES).respond(text=O.RESPONSES_STREAM, headers=O.SSE_HEADERS)
    agent = agents_sdk.Agent(name="writer", model=agents_sdk.model())
    with recorder.meter.for_tenant("acme"):
        result = agents_sdk.Runner.run_streamed(agent, "The capital of France?",
                                                run_config=agents_sdk.RunConfig(tracing_disabled=True))
        async for _ in result.stream_events():
            pass
    event = recorder.one()
    assert (event.tenant_id, event.stream, event.partial, event.usage.input_tokens) == ("acme", True, False, 14)


# -- LangChain -----------------------------------------------------------------------------------


@pytest.fixture
def chat_openai():
    langchain_openai = pytest.importorskip("langchain_openai")
    return langchain_openai.ChatOpenAI(model="gpt-4o", api_key="sk-test", max_retries=0)


@pytest.fixture
def chat_anthropic():
    langchain_anthropic = pytest.importorskip("langchain_anthropic")
    return langchain_anthropic.ChatAnthropic(model="claude-sonnet-4-6", api_key="sk-test", max_retries=0)


def test_langchain_invoke_and_batch(recorder, http_mock, chat_openai, chat_anthropic):
    """`batch` runs its calls in a thread pool that copies the caller's context (LangChain's
    `ContextThreadPoolExecutor`): the scope reaches those threads."""
    http_mock.post(OPENAI_CHAT).respond(json=O.CHAT_PLAIN, headers=O.HEADERS)
    http_mock.post(ANTHROPIC).respond(json=A.MESSAGE_CACHED, headers=A.HEADERS)
    with recorder.meter.for_tenant("acme"):
        chat_openai.invoke("Hello")
        chat_anthropic.invoke("Summarise the contract")
        chat_openai.batch(["a", "b", "c"])
        chat_anthropic.batch(["a", "b"])
    events = recorder.recorded()
    assert tenants(events) == ["acme"] * 7
    assert sorted(e.provider for e in events) == ["anthropic"] * 3 + ["openai"] * 4
    anthropic_usage = {e.usage.input_tokens for e in events if e.provider == "anthropic"}
    assert anthropic_usage == {12 + 48213 + 3070}  # inclusive, read once per call


async def test_langchain_async_and_streams(recorder, http_mock, chat_openai, chat_anthropic):
    http_mock.post(OPENAI_CHAT).respond(text=O.CHAT_STREAM_WITH_USAGE, headers=O.SSE_HEADERS)
    http_mock.post(ANTHROPIC).respond(json=A.MESSAGE_PLAIN, headers=A.HEADERS)
    async with recorder.meter.for_tenant("globex"):
        chunks = [c async for c in chat_openai.astream("The capital of France?")]
        await chat_anthropic.abatch(["a", "b"])
    assert "".join(c.content for c in chunks) == "The capital of France is Paris."
    events = sorted(recorder.recorded(), key=lambda e: e.provider)
    assert [(e.provider, e.tenant_id, e.stream) for e in events] == [
        ("anthropic", "globex", False), ("anthropic", "globex", False), ("openai", "globex", True)]
    assert events[2].usage.input_tokens == 14 and not events[2].partial


def test_langchain_in_your_own_threads_needs_carry_scope(recorder, http_mock, chat_openai):
    """A thread of your own does not inherit the scope (contextvars are per thread): the call is
    metered, for no tenant. `carry_scope` binds the scope to the function you hand over."""
    http_mock.post(OPENAI_CHAT).respond(json=O.CHAT_PLAIN, headers=O.HEADERS)
    with recorder.meter.for_tenant("acme"), ThreadPoolExecutor(2) as pool:
        pool.submit(chat_openai.invoke, "lost").result()
        pool.submit(carry_scope(chat_openai.invoke), "carried").result()
    assert tenants(recorder.recorded()) == ["-", "acme"]


# -- pydantic-ai ---------------------------------------------------------------------------------


@pytest.fixture
def pydantic_ai():
    return pytest.importorskip("pydantic_ai")


def test_pydantic_ai_openai_run_with_a_tool(recorder, http_mock, pydantic_ai):
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    route = http_mock.post(OPENAI_CHAT).mock(side_effect=replies(O.CHAT_TOOL_CALLS, O.CHAT_PLAIN))
    agent = pydantic_ai.Agent(OpenAIChatModel("gpt-4o", provider=OpenAIProvider(api_key="sk-test")))

    @agent.tool_plain
    def get_weather(location: str) -> str:
        return f"Sunny in {location}"

    with recorder.meter.for_tenant("acme", run_id="r7"):
        assert agent.run_sync("Weather in Paris and Bogotá?").output.startswith("Hello!")
    events = recorder.recorded()
    assert route.call_count == len(events) == 2
    assert [(e.tenant_id, e.run_id, e.tool_calls) for e in events] == [("acme", "r7", 2), ("acme", "r7", 0)]


def test_pydantic_ai_anthropic(recorder, http_mock, pydantic_ai):
    """pydantic-ai first asks the anthropic SDK for a non-streamed message with the model's whole
    output as `max_tokens`; the SDK refuses it before sending anything (a ValueError: "streaming
    is required"), and pydantic-ai streams instead. The refused attempt is recorded as a failed
    call billed nothing ($0, `nothing billed`) beside the one billed call. With `max_tokens` set
    (model_settings), only the billed call is made."""
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    def messages(request):
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, text=A.STREAM_CACHED, headers=A.STREAM_HEADERS)
        return httpx.Response(200, json=A.MESSAGE_CACHED, headers=A.HEADERS)

    route = http_mock.post(ANTHROPIC).mock(side_effect=messages)
    try:
        provider = AnthropicProvider(api_key="sk-test")
    except TypeError as exc:  # an older pydantic-ai hands an httpx client to an httpx2-based anthropic SDK
        pytest.skip(f"this pydantic-ai release cannot drive this anthropic SDK: {exc}")
    agent = pydantic_ai.Agent(AnthropicModel("claude-sonnet-4-6", provider=provider))
    with recorder.meter.for_tenant("acme"):
        assert agent.run_sync("Summarise section 9").output.startswith("Section 9.1")
    events = recorder.recorded()
    billed = [e for e in events if e.error is None]
    assert route.call_count == len(billed) == 1
    assert (billed[0].tenant_id, billed[0].stream, billed[0].usage.input_tokens) == ("acme", True, 51295)
    assert all((e.error, e.cost_usd, e.usage.is_empty()) == ("ValueError", 0, True) for e in events if e.error)

    recorder.events.clear()
    with recorder.meter.for_tenant("acme"):
        agent.run_sync("Summarise section 9", model_settings={"max_tokens": 1024})
    assert [(e.tenant_id, e.error, e.stream) for e in recorder.recorded()] == [("acme", None, False)]


async def test_pydantic_ai_concurrent_runs(recorder, http_mock, pydantic_ai):
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    http_mock.post(OPENAI_CHAT).respond(json=O.CHAT_PLAIN, headers=O.HEADERS)
    agent = pydantic_ai.Agent(OpenAIChatModel("gpt-4o", provider=OpenAIProvider(api_key="sk-test")))

    async def run(tenant):
        async with recorder.meter.for_tenant(tenant):
            await agent.run("Hello")

    await asyncio.gather(*(run(t) for t in ("acme", "globex", "initech")))
    assert tenants(recorder.recorded()) == ["acme", "globex", "initech"]
