"""The LiteLLM Python SDK: `litellm.completion`, `acompletion`, `embedding`, `aembedding`.

LiteLLM is metered as one provider of its own kind: each call through it is one event, with the
provider LiteLLM routed it to (its `custom_llm_provider`, named as tollmeter names providers:
`bedrock` is `aws`, `vertex_ai` is `google-vertex`, ...) and the model without LiteLLM's
`provider/` prefix, so that tollmeter prices it as it would price a direct call. LiteLLM calls
some providers through their SDKs (OpenAI, Azure, ...) and the others over HTTP itself; the
SDK calls it makes inside an instrumented call are passed through (`call.in_call`), so a call
is never counted twice, whichever patches are active.

Usage: LiteLLM's responses and stream chunks are OpenAI-shaped and read by the OpenAI
chat-completions format (`formats.openai_chat`). LiteLLM's `prompt_tokens` is inclusive for
every provider (for Anthropic it adds the cache reads and writes to `input_tokens`), its
`prompt_tokens_details` carries the cache writes (`cache_creation_tokens`, with the 1-hour TTL
ones in `cache_creation_token_details`) and its `server_tool_use` the billed web searches.

Cost: LiteLLM prices every call from its own price map (`_hidden_params["response_cost"]` on a
response; on a stream, its bill written into the final usage's `cost`). That is the event's
`provider_cost_usd`, with `price_source` "litellm"; tollmeter's own price of the same usage is
kept beside it (`computed_cost_usd`).

Streams: the caller gets LiteLLM's own `CustomStreamWrapper`. It is observed in place: a
class-level hook on its `__next__` / `__anext__` reads each chunk of a metered stream (other
streams pass straight through), its `close` / `aclose` end the call early, and a stream dropped
unfinished is recorded partial when it is collected. LiteLLM may open the provider's stream
lazily, on the first chunk: chunks are fetched with nested instrumentation suppressed too.

Only the module's attributes are patched (`litellm.completion`, ...): code that imported the
functions themselves (`from litellm import completion`) before `patch_all()` keeps the unpatched
ones. `litellm.Router` calls the module's functions and is covered.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..formats import openai_chat
from .attribution import provider_for_base_url
from .call import Call, in_call
from .endpoint import ChunkReader, Endpoint, Kind
from .fields import count, field, text
from .registry import Patch

if TYPE_CHECKING:
    from ..events import LLMEvent

#: The price source of a cost LiteLLM reported.
LITELLM_SOURCE = "litellm"

#: LiteLLM's provider names that tollmeter (and its price data) names otherwise.
PROVIDER_NAMES: Mapping[str, str] = {
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "sagemaker": "aws-sagemaker",
    "sagemaker_chat": "aws-sagemaker",
    "vertex_ai": "google-vertex",
    "vertex_ai_beta": "google-vertex",
    "gemini": "google",
    "azure_ai": "azure",
    "azure_text": "azure",
    "text-completion-openai": "openai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "xai": "x-ai",
    "moonshot": "moonshotai",
    "cohere_chat": "cohere",
    "codestral": "mistral",
    "text-completion-codestral": "mistral",
    "hosted_vllm": "self-hosted",
    "vllm": "self-hosted",
    "ollama": "self-hosted",
    "ollama_chat": "self-hosted",
    "lm_studio": "self-hosted",
    "llamafile": "self-hosted",
}

#: Providers that LiteLLM reaches with the OpenAI protocol at a base URL the caller may set:
#: with an explicit `api_base`, the URL says who serves the call (a gateway, a local server).
_OPENAI_PROTOCOL = frozenset({"openai", "text-completion-openai", "openai_like", "custom_openai"})

#: Where a stream's observation state lives in the `CustomStreamWrapper`'s `__dict__`.
_STATE = "_tollmeter_stream"


class _LiteLLMCall(Call):
    """A call through LiteLLM: a cost LiteLLM reported is marked as LiteLLM's."""

    __slots__ = ()

    def to_event(self) -> LLMEvent:
        event = super().to_event()
        if event.provider_cost_usd is not None:
            event.price_source = LITELLM_SOURCE
        return event


# -- the request: provider and model -----------------------------------------------------------

#: (model, custom_llm_provider, api_base) -> (provider, model): LiteLLM's routing costs ~7 µs.
_routes: dict[tuple[Any, Any, Any], tuple[str, str | None]] = {}


def _route(model: Any, kwargs: Mapping[str, Any], call: Call) -> tuple[str, str | None]:
    """The provider LiteLLM sends `model` to, in tollmeter's names, and the model without
    LiteLLM's `provider/` prefix."""
    custom = kwargs.get("custom_llm_provider")
    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    key = (model, custom, api_base)
    found = _routes.get(key)
    if found is not None:
        return found
    import litellm

    name: str | None = model if isinstance(model, str) else None
    try:
        name, custom, _, _ = litellm.get_llm_provider(model=model, custom_llm_provider=custom, api_base=api_base)
    except Exception:  # a model LiteLLM cannot route: it raises itself, the call is recorded as failed
        custom = custom or "litellm"
    provider = provider_name(custom, api_base, call)
    if len(_routes) > 1024:
        _routes.clear()
    _routes[key] = found = (provider, name)
    return found


def provider_name(custom_llm_provider: Any, api_base: Any = None, call: Call | None = None) -> str:
    """tollmeter's name for one of LiteLLM's providers (`PROVIDER_NAMES`); an OpenAI-protocol
    provider at an explicit base URL is named by that URL, as a direct OpenAI client would be."""
    custom = text(custom_llm_provider) or "litellm"
    if api_base and custom in _OPENAI_PROTOCOL and isinstance(api_base, str):
        overrides = call.settings.provider_overrides if call is not None else {}
        return provider_for_base_url(api_base, "openai", overrides)
    return PROVIDER_NAMES.get(custom, custom)


def _positional(kwargs: Mapping[str, Any], args: tuple, names: tuple[str, str]) -> Mapping[str, Any]:
    """The request with its leading positional arguments (`model`, then `messages` / `input`)
    named, for the estimate."""
    if not args:
        return kwargs
    return {**dict(zip(names, args)), **kwargs}


# -- reading responses ---------------------------------------------------------------------------


def litellm_cost(value: Any) -> Decimal | None:
    """LiteLLM's cost (a float) as an exact amount: the float's shortest decimal form, rounded
    to 12 decimal places (float arithmetic leaves noise below them: 0.037118399999999996)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount < 0:
        return None
    if amount.as_tuple().exponent < -12:  # type: ignore[operator]
        amount = amount.quantize(Decimal("1e-12")).normalize()
    return amount


def read_usage(call: Call, usage: Any) -> None:
    """LiteLLM's OpenAI-shaped `usage` (a `UsageReader`, on the background worker): the OpenAI
    reading, plus the cache writes, the 1-hour cache writes and the web searches LiteLLM
    carries over from Anthropic, and LiteLLM's bill in `usage.cost`."""
    if type(usage).__name__ == "UnreportedUsage":  # LiteLLM's placeholder: nothing reported yet
        return
    openai_chat.read_usage(call, usage)
    result = call.usage
    if result is None:
        return
    details = field(usage, "prompt_tokens_details")
    if result.cache_write_tokens is None:
        writes = count(field(details, "cache_creation_tokens"))
        if writes is None:
            writes = count(field(usage, "cache_creation_input_tokens"))
        if writes:  # 0 from a provider without caches says nothing
            result.cache_write_tokens = writes
    long_writes = count(field(field(details, "cache_creation_token_details"), "ephemeral_1h_input_tokens"))
    if long_writes:
        result.cache_write_1h_tokens = long_writes
    searches = count(field(field(usage, "server_tool_use"), "web_search_requests"))
    if searches:
        call.web_search_requests = searches
    cost = litellm_cost(field(usage, "cost"))  # LiteLLM's bill, read exactly (not as the float's digits)
    if cost is not None:
        call.provider_cost_usd = cost


def _read_with_cost(call: Call, usage_and_cost: tuple[Any, Decimal | None]) -> None:
    """A response's usage, with the cost LiteLLM put in its hidden params (which wins)."""
    usage, cost = usage_and_cost
    read_usage(call, usage)
    if cost is not None:
        call.provider_cost_usd = cost


def _read_hidden_usage(call: Call, hidden: Mapping[str, Any]) -> None:
    """A stream whose caller did not ask for usage: LiteLLM keeps it in the hidden params of
    the last chunk, and completes it (LiteLLM's bill in its `cost`) when the stream ends."""
    usage = hidden.get("usage")
    if usage is not None:
        read_usage(call, usage)


def _hidden(obj: Any) -> Mapping[str, Any]:
    hidden = getattr(obj, "_hidden_params", None)
    return hidden if isinstance(hidden, dict) else {}


def _read_hidden(call: Call, hidden: Mapping[str, Any]) -> None:
    """What LiteLLM says of the call beside the response: the provider it was really sent to
    (after fallbacks) and the provider's request id."""
    custom = hidden.get("custom_llm_provider")
    if isinstance(custom, str) and custom:
        call.provider = provider_name(custom, hidden.get("api_base") if custom in _OPENAI_PROTOCOL else None, call)
    headers = hidden.get("additional_headers")
    if isinstance(headers, dict) and call.request_id is None:
        request_id = (headers.get("llm_provider-x-request-id") or headers.get("llm_provider-request-id")
                      or headers.get("request-id"))
        if request_id:
            call.request_id = text(request_id)


# -- endpoints -----------------------------------------------------------------------------------


class _LiteLLMEndpoint(Endpoint):
    #: The names of the function's leading positional parameters.
    positional: tuple[str, str] = ("model", "messages")

    def accepts(self, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> bool:
        """A call answered by LiteLLM's own mock (`mock_response=`) reaches no provider: not metered."""
        return "mock_response" not in kwargs and "mock_tool_calls" not in kwargs

    def start(self, call: Call, instance: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict | None:
        call.__class__ = _LiteLLMCall  # same layout: only `to_event` differs
        model = kwargs.get("model", args[0] if args else None)
        call.provider, call.request_model = _route(model, kwargs, call)
        call.stream = kwargs.get("stream") is True
        if args:
            call.request = _positional(kwargs, args, self.positional)
        return None

    def read_error(self, call: Call, exc: BaseException) -> None:
        super().read_error(call, exc)  # LiteLLM's exceptions carry `status_code`
        provider = getattr(exc, "llm_provider", None)
        if isinstance(provider, str) and provider:
            call.provider = provider_name(provider, None, call)


class Completion(_LiteLLMEndpoint):
    name = "chat.completions"
    request_format = openai_chat.CHAT

    def classify(self, result: Any) -> Kind:
        return Kind.CUSTOM if _is_stream(result) else Kind.VALUE

    def read_response(self, call: Call, response: Any) -> None:
        hidden = _hidden(response)
        _read_hidden(call, hidden)
        model = getattr(response, "model", None)
        if isinstance(model, str) and model:
            call.model = model
        choices = getattr(response, "choices", None)
        if choices:
            call.tool_calls, call.finish_reason = openai_chat.summarize_choices(choices)
        elif choices is not None:
            call.tool_calls = 0
        usage = getattr(response, "usage", None)
        tier = field(response, "service_tier") or field(usage, "service_tier")
        if tier is not None:
            call.service_tier = text(tier)
        cost = litellm_cost(hidden.get("response_cost"))
        if usage is not None:
            call.defer_usage(_read_with_cost, (usage, cost))
        elif cost is not None:
            call.provider_cost_usd = cost

    def observe_result(self, call: Call, stream: Any) -> Any:
        """A `CustomStreamWrapper`: observed in place by the hooks on its class."""
        call.stream = True
        custom = getattr(stream, "custom_llm_provider", None)
        hidden = _hidden(stream)
        _read_hidden(call, {**hidden, "custom_llm_provider": custom} if custom else hidden)
        stream.__dict__[_STATE] = _StreamState(call, self.stream_reader(call))
        return stream

    def stream_reader(self, call: Call) -> ChunkReader:
        return chunk_reader(call)


class Embedding(_LiteLLMEndpoint):
    name = "embeddings"
    request_format = openai_chat.EMBEDDINGS
    positional = ("model", "input")

    def read_response(self, call: Call, response: Any) -> None:
        hidden = _hidden(response)
        _read_hidden(call, hidden)
        model = getattr(response, "model", None)
        if isinstance(model, str) and model:
            call.model = model
        cost = litellm_cost(hidden.get("response_cost"))
        usage = getattr(response, "usage", None)
        if usage is not None:
            call.defer_usage(_read_with_cost, (usage, cost))
        elif cost is not None:
            call.provider_cost_usd = cost


def _is_stream(result: Any) -> bool:
    return type(result).__name__ == "CustomStreamWrapper" and hasattr(result, "__dict__")


# -- streams -------------------------------------------------------------------------------------


def chunk_reader(call: Call) -> ChunkReader:
    """A reader of LiteLLM's stream chunks (`ModelResponseStream`, OpenAI-shaped): the first
    chunk with choices is the first token; tool calls are counted from the deltas, the last
    finish reason wins; the usage is the last chunk's `usage` (the caller asked for it with
    `stream_options`) or, when the caller did not, the usage LiteLLM keeps in the hidden params
    of the last chunk. Every chunk is the caller's: nothing is hidden."""
    started = False
    call.tool_calls = 0

    def read(chunk: Any) -> bool:
        nonlocal started
        choices = chunk.choices
        if choices:
            if not started:
                started = True
                call.mark_first_token()
                model = getattr(chunk, "model", None)
                if isinstance(model, str) and model:
                    call.model = model
            for choice in choices:
                delta = getattr(choice, "delta", None)
                tool_deltas = getattr(delta, "tool_calls", None)
                if tool_deltas:
                    for tool_delta in tool_deltas:
                        if getattr(tool_delta, "id", None):  # a call's first fragment carries its id
                            call.tool_calls += 1
                reason = choice.finish_reason
                if reason is not None:
                    call.finish_reason = reason
        usage = getattr(chunk, "usage", None)  # LiteLLM deletes the attribute when there is none
        if usage is not None:
            call.defer_usage(read_usage, usage)
        else:
            hidden = getattr(chunk, "_hidden_params", None)
            if isinstance(hidden, dict) and hidden.get("usage") is not None:
                call.defer_usage(_read_hidden_usage, hidden)
        return True

    return read


class _StreamState:
    """One metered `CustomStreamWrapper`: its call and chunk reader, kept in the wrapper's
    `__dict__`. Collected with the wrapper: a stream dropped before its end is recorded then."""

    __slots__ = ("call", "read", "seen", "busy")

    def __init__(self, call: Call, read: ChunkReader) -> None:
        self.call = call
        self.read = read
        self.seen = False
        self.busy = False  # inside LiteLLM's own __next__ (which closes the stream itself)

    def took(self, chunk: Any) -> Any:
        self.seen = True
        try:
            self.read(chunk)
        except Exception as fault:  # reported once; the chunks flow on
            self.call.hooks.fault(fault, "reading a litellm stream chunk")
            self.read = _ignore
        return chunk

    def ended(self, stream: Any) -> None:
        """The stream has no more chunks: complete if LiteLLM reached the provider's end."""
        self.call.finish(partial=getattr(stream, "sent_last_chunk", True) is not True)

    def __del__(self) -> None:
        call = getattr(self, "call", None)
        if call is not None and not call.done:
            call.finish(partial=True)


def _ignore(chunk: Any) -> bool:
    return True


def _state_of(instance: Any) -> _StreamState | None:
    values = getattr(instance, "__dict__", None)
    return values.get(_STATE) if values is not None else None


def _next_hook(hooks: Any) -> Callable[..., Any]:
    def on_next(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        state = _state_of(instance)
        if state is None or state.call.done:
            return wrapped(*args, **kwargs)
        token = in_call.set(True)
        state.busy = True
        try:
            chunk = wrapped(*args, **kwargs)
        except StopIteration:
            state.ended(instance)
            raise
        except BaseException as exc:
            state.call.fail(exc, partial=state.seen)
            raise
        finally:
            state.busy = False
            in_call.reset(token)
        return state.took(chunk)

    return on_next


def _anext_hook(hooks: Any) -> Callable[..., Any]:
    def on_anext(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        state = _state_of(instance)
        if state is None or state.call.done:
            return wrapped(*args, **kwargs)
        return _anext(state, wrapped(*args, **kwargs), instance)

    return on_anext


async def _anext(state: _StreamState, pending: Any, instance: Any) -> Any:
    token = in_call.set(True)
    state.busy = True
    try:
        chunk = await pending
    except StopAsyncIteration:
        state.ended(instance)
        raise
    except BaseException as exc:
        state.call.fail(exc, partial=state.seen)
        raise
    finally:
        state.busy = False
        in_call.reset(token)
    return state.took(chunk)


def _close_hook(hooks: Any) -> Callable[..., Any]:
    """`close` / `aclose` by the caller ends a metered stream's call (partial unless it had
    reached its end); LiteLLM's own closing, from inside `__next__`, is left to `__next__`."""

    def on_close(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        state = _state_of(instance)
        if state is not None and not state.busy and not state.call.done:
            state.ended(instance)
        return wrapped(*args, **kwargs)

    return on_close


_COMPLETION, _EMBEDDING = Completion(), Embedding()
_STREAM_MODULE = "litellm.litellm_core_utils.streaming_handler"


def patches() -> list[Patch]:
    return [
        Patch("litellm", "completion", _COMPLETION),
        Patch("litellm", "acompletion", _COMPLETION, is_async=True),
        Patch("litellm", "embedding", _EMBEDDING),
        Patch("litellm", "aembedding", _EMBEDDING, is_async=True),
        Patch(_STREAM_MODULE, "CustomStreamWrapper.__next__", wrapper=_next_hook),
        Patch(_STREAM_MODULE, "CustomStreamWrapper.__anext__", wrapper=_anext_hook),
        Patch(_STREAM_MODULE, "CustomStreamWrapper.close", wrapper=_close_hook),
        Patch(_STREAM_MODULE, "CustomStreamWrapper.aclose", wrapper=_close_hook),
    ]
