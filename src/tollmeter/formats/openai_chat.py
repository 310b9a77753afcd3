"""The OpenAI chat-completions format: OpenAI's own API and every OpenAI-compatible server behind
the `openai` client (Azure, DeepSeek, OpenRouter, Together, vLLM, ...), Groq, Mistral, and the
OpenAI-style InvokeModel bodies on Bedrock (gpt-oss, Mistral Large, DeepSeek). Legacy
completions and embeddings report the same `usage` object.

Usage is inclusive: `prompt_tokens` counts the cached tokens (`prompt_tokens_details.
cached_tokens`; DeepSeek reports its cache hits as `prompt_cache_hit_tokens` beside it, Mistral
as `num_cached_tokens` or, in older responses, `prompt_token_details`) and `completion_tokens`
the reasoning tokens. OpenRouter adds `cache_write_tokens` to the prompt details and the call's
`cost`; Mistral adds the `service_tier`.

Gemini's OpenAI-compatible endpoint (generativelanguage.googleapis.com/v1beta/openai) counts
the thinking tokens outside `completion_tokens` (in `total_tokens` only, or also as
`completion_tokens_details.reasoning_tokens`): when `total_tokens` exceeds prompt + completion
by exactly the reported reasoning tokens (any provider), or by anything at all on Google's
endpoint, the difference is output the completion count left out, and is added to it.

Streams: each chunk carries `choices` with a `delta`; a tool call's first delta carries its id
and the fragments after it none; usage comes in a last chunk of its own (OpenAI: only when asked
for with `stream_options`), or on the last choice chunk (some compatible servers).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..events import Usage
from ..instrument.fields import count, field, mapping, money, text
from ..limits.estimate import (HOSTED_TOOL_TOKENS, PER_MESSAGE_TOKENS, Acc, RequestFormat, as_mapping, cap_value,
                               choice_count, member, text_tokens, walk, walk_messages, walk_parts,
                               walk_text, walk_tools)

if TYPE_CHECKING:
    from ..instrument.call import Call, UsageReader
    from ..instrument.endpoint import ChunkReader

#: Reads one field of a payload: `field`, or an SDK's stricter reading of what was really sent.
Getter = Callable[[Any, str], Any]


# -- usage (on the background worker) --------------------------------------------------------


def usage_of(usage: Any, get: Getter = field) -> Usage:
    """The `Usage` of one `usage` object (an SDK object or its JSON)."""
    prompt_details = get(usage, "prompt_tokens_details")
    completion_details = get(usage, "completion_tokens_details")
    cached = count(get(prompt_details, "cached_tokens"))
    if cached is None:
        cached = _cached_elsewhere(usage, get)
    prompt = count(get(usage, "prompt_tokens"))
    completion = count(get(usage, "completion_tokens"))
    reasoning = count(get(completion_details, "reasoning_tokens"))
    if reasoning and prompt is not None and completion is not None:
        # Reasoning outside the completion count (Gemini's compatible endpoint): add it when
        # the total says so.
        total = count(get(usage, "total_tokens"))
        if total is not None and total - prompt - completion == reasoning:
            completion += reasoning
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cached,
        cache_write_tokens=count(get(prompt_details, "cache_write_tokens")),  # OpenRouter
        input_audio_tokens=count(get(prompt_details, "audio_tokens")),
        input_image_tokens=count(get(prompt_details, "image_tokens")),
        reasoning_tokens=reasoning,
        output_audio_tokens=count(get(completion_details, "audio_tokens")),
        accepted_prediction_tokens=count(get(completion_details, "accepted_prediction_tokens")),
        rejected_prediction_tokens=count(get(completion_details, "rejected_prediction_tokens")),
    )


def _with_unreported_reasoning(usage: Usage, total: int | None) -> Usage:
    """Gemini's compatible endpoint: thinking tokens in the total only are output tokens."""
    if total is None or usage.input_tokens is None or usage.output_tokens is None:
        return usage
    gap = total - usage.input_tokens - usage.output_tokens
    if gap <= 0 or (usage.reasoning_tokens is not None and usage.reasoning_tokens != gap):
        return usage
    from dataclasses import replace

    return replace(usage, output_tokens=usage.output_tokens + gap, reasoning_tokens=gap)


def _cached_elsewhere(usage: Any, get: Getter) -> int | None:
    cached = count(get(get(usage, "prompt_token_details"), "cached_tokens"))  # older Mistral
    if cached is None:
        cached = count(get(usage, "prompt_cache_hit_tokens"))  # DeepSeek
    if cached is None:
        cached = count(get(usage, "num_cached_tokens"))  # Mistral
    return cached


#: Providers whose OpenAI-compatible usage leaves the thinking tokens out of `completion_tokens`
#: even when it does not report them apart (Gemini's compatible endpoint).
EXCLUSIVE_REASONING = frozenset({"google", "google-vertex"})


def read_usage(call: Call, usage: Any, get: Getter = field) -> None:
    """A deferred `usage` object: the usage, and what else it reports (a `UsageReader`)."""
    counted = call.usage = usage_of(usage, get)
    if call.provider in EXCLUSIVE_REASONING:
        call.usage = _with_unreported_reasoning(counted, count(get(usage, "total_tokens")))
    cost = money(get(usage, "cost"))  # OpenRouter reports what the call cost
    if cost is not None:
        call.provider_cost_usd = cost
    tier = get(usage, "service_tier")  # Mistral
    if tier is not None:
        call.service_tier = text(tier)


def used_tokens(reader: Callable, usage: Any) -> tuple[int, int] | None:
    """What a call used, read from the usage `read_usage` was deferred with (`UsedReader`, on
    the caller's thread: two counts, nothing built): the prompt tokens, and the completion
    tokens or, when the total says more (reasoning left out of the completion count, as
    Gemini's compatible endpoint does), the total less the prompt. None for usage that reports
    its own cost (OpenRouter's: the event is charged that), for usage with audio tokens (whose
    rates may come from the supplement, above any of the model's listed token rates:
    pricing/supplement.py), and for another reader's usage."""
    if reader is not read_usage:
        return None
    values = mapping(usage)  # the declared fields; a cost is an extra of the SDK's object
    extra = getattr(usage, "__pydantic_extra__", None)
    if values.get("cost") is not None or (type(extra) is dict and extra.get("cost") is not None):
        return None
    for details in (values.get("prompt_tokens_details"), values.get("completion_tokens_details")):
        if details is not None and count(mapping(details).get("audio_tokens")):
            return None
    prompt = count(values.get("prompt_tokens"))
    completion = count(values.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    total = count(values.get("total_tokens"))
    if total is not None and total - prompt > completion:
        completion = total - prompt
    return prompt, completion


# -- complete responses (on the caller's thread) ---------------------------------------------


def read_response(call: Call, response: Any, usage_reader: UsageReader = read_usage) -> Mapping[str, Any]:
    """A chat completion, legacy completion or embedding list (an SDK object or its JSON): the
    model, service tier, tool calls and finish reason now, the `usage` object deferred to
    `usage_reader`, and the request id a Stainless SDK (openai, groq) keeps among a parsed
    response's private attributes (`stainless.read_request_id`). Returns the response's fields,
    for what an SDK adds to them.

    Runs on the caller's thread after every call, where each function visited costs a cache
    miss: `mapping`, `_read_head`, `call.defer_usage`, the request id and, for the usual single
    choice whose message is an object or a dict, `summarize_choices` are written out here, and
    the openai SDK's endpoint is this function itself."""
    values = response if type(response) is dict else getattr(response, "__dict__", None)
    if type(values) is not dict:
        values = mapping(response)
    request_id = values.get("_request_id")  # set on the object: in its __dict__ (openai 2-3) ...
    if request_id is None:
        private = getattr(response, "__pydantic_private__", None)  # ... or its private values
        if private:
            request_id = private.get("_request_id")
    if type(request_id) is str:
        call.request_id = request_id
    model = values.get("model")
    if type(model) is str:
        call.model = model
    tier = values.get("service_tier")
    if tier is not None:
        call.service_tier = tier if type(tier) is str else text(tier)
    usage = values.get("usage")
    if usage is not None:
        call.deferred = (usage_reader, usage)  # `call.defer_usage`
        call.usage = None
    choices = values.get("choices")
    if choices is None:  # an embedding list
        return values
    if type(choices) is list and len(choices) == 1:
        choice = choices[0]
        choice = choice if type(choice) is dict else getattr(choice, "__dict__", None)
        message = choice.get("message") if type(choice) is dict else None
        message = message if type(message) is dict else getattr(message, "__dict__", None)
        if type(message) is dict and message.get("function_call") is None:
            calls = message.get("tool_calls")
            call.tool_calls = len(calls) if calls and type(calls) is list else 0
            reason = choice.get("finish_reason") or choice.get("stop_reason")  # type: ignore[union-attr]
            call.finish_reason = reason if reason is None or type(reason) is str else text(reason)
            return values
    call.tool_calls, reason = summarize_choices(choices)
    if choices:
        call.finish_reason = reason
    return values


def summarize_choices(choices: Any) -> tuple[int, str | None]:
    """The tool calls of a response's choices (the legacy single `function_call` counts as one)
    and the first choice's finish reason (Bedrock's Mistral bodies call it `stop_reason`)."""
    if not choices or type(choices) is not list:
        return 0, None
    tool_calls = 0
    first = None
    for choice in choices:
        # `mapping()`, inlined: this runs on the caller's thread for every response.
        values = choice if type(choice) is dict else getattr(choice, "__dict__", None) or _EMPTY
        if first is None:
            first = values
        message = values.get("message")
        message = message if type(message) is dict else getattr(message, "__dict__", None) or _EMPTY
        calls = message.get("tool_calls")
        if calls and type(calls) is list:
            tool_calls += len(calls)
        if message.get("function_call") is not None:
            tool_calls += 1
    reason = first.get("finish_reason") or first.get("stop_reason")  # type: ignore[union-attr]
    return tool_calls, reason if reason is None or type(reason) is str else text(reason)


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def read_head(call: Call, response: Any) -> None:
    """The model and service tier a response or its first chunk names."""
    _read_head(call, mapping(response))


def _read_head(call: Call, values: Mapping[str, Any]) -> None:
    model = values.get("model")
    if type(model) is str:
        call.model = model
    tier = values.get("service_tier")
    if tier is not None:
        call.service_tier = tier if type(tier) is str else text(tier)


# -- streams (on the caller's thread, once per chunk) ----------------------------------------


def chunk_reader(call: Call, *, head: Callable[[Call, Any], None] = read_head,
                 usage_reader: UsageReader = read_usage, deltas: bool = True) -> ChunkReader:
    """A reader of chat completion chunks (`deltas`; legacy completion chunks without): the
    first chunk with choices is the first token and names the model (`head`); tool calls are
    counted from the deltas, the last finish reason wins; the last usage is deferred to
    `usage_reader`. What the caller sees is decided by `call.chunk_filter` alone (set when the
    request was changed to ask for usage: `hide_asked_usage`), never by this reader.

    Malformed chunks (`delta: null`, a null tool call, choices that are not objects, a chunk
    that is not an object, missing fields) are read as far as they go (`_read_malformed`):
    they never fault, so the usage that follows them is still read. Runs once per chunk: a
    content delta costs a few attribute reads and calls nothing.
    """
    shown = call.chunk_filter
    started = False
    if deltas:
        call.tool_calls = 0

    def read(chunk: Any) -> bool:
        nonlocal started
        # Everything is read before anything is kept: a malformed chunk is read again, slowly.
        try:
            choices = chunk.choices
            usage = chunk.usage
            if usage is None and started and deltas and len(choices) == 1:
                # The common chunk, a content delta after the first: nothing to keep when its one
                # choice has no finish and no tool call (what the general path below would find).
                choice = choices[0]
                if choice.finish_reason is None and not choice.delta.tool_calls:
                    if shown is None:
                        return True
                    if shown is hide_asked_usage:  # inlined: "usage": null, unset
                        try:
                            chunk.__pydantic_fields_set__.discard("usage")
                        except AttributeError:  # not a pydantic 2 model: nothing to unset
                            pass
                        return True
                    return shown(chunk)
            tools = 0
            reason = None
            if choices:
                if deltas:
                    for choice in choices:
                        tool_deltas = choice.delta.tool_calls
                        if tool_deltas:
                            for tool_delta in tool_deltas:
                                # A call's first fragment carries its id (Mistral's SDK says "null" for none).
                                tool_id = tool_delta.id
                                if tool_id and tool_id != "null":
                                    tools += 1
                        finish = choice.finish_reason
                        if finish is not None:
                            reason = finish
                            if finish == "function_call":  # the legacy single function call
                                tools += 1
                else:
                    reason = choices[-1].finish_reason
        except Exception:
            choices, usage, tools, reason = _read_malformed(chunk, deltas)
        if choices:
            if not started:
                started = True
                call.mark_first_token()
                head(call, chunk)
            if tools:
                call.tool_calls = (call.tool_calls or 0) + tools
            if reason is not None:
                call.finish_reason = reason if type(reason) is str else text(reason)
        if usage is not None:
            if call.model is None:
                head(call, chunk)
            call.defer_usage(usage_reader, usage)
        elif shown is hide_asked_usage:  # inlined for the common chunk: "usage": null, unset
            try:
                chunk.__pydantic_fields_set__.discard("usage")
            except AttributeError:  # not a pydantic 2 model: nothing to unset
                pass
            return True
        return True if shown is None else shown(chunk)

    return read


def _read_malformed(chunk: Any, deltas: bool) -> tuple[Any, Any, int, Any]:
    """(choices, usage, tool calls, finish reason) of a chunk the fast path could not read:
    whatever is there, nothing where a field is missing or null or not an object."""
    choices = getattr(chunk, "choices", None)
    usage = getattr(chunk, "usage", None)
    if not isinstance(choices, list):
        return None, usage, 0, None
    tools = 0
    reason = None
    for choice in choices if deltas else choices[-1:]:
        if deltas:
            tool_deltas = getattr(getattr(choice, "delta", None), "tool_calls", None)
            if isinstance(tool_deltas, list):
                for tool_delta in tool_deltas:
                    tool_id = getattr(tool_delta, "id", None)
                    if tool_id and tool_id != "null":
                        tools += 1
        finish = getattr(choice, "finish_reason", None)
        if finish is not None:
            reason = finish
            if finish == "function_call":
                tools += 1
    return choices, usage, tools, reason


def hide_asked_usage(chunk: Any) -> bool:
    """The chunk filter of a stream asked for the usage its caller did not ask for: what the
    caller sees is what it would have seen without asking. A chunk of usage alone (no choices)
    is hidden; usage on a chunk of choices (DeepSeek sends it there) is unset on it, and so is
    the `"usage": null` asking puts on every other chunk. Fault-proof: any chunk, however
    malformed, is decided without raising (shown, when it cannot be told apart)."""
    try:
        values = getattr(chunk, "__dict__", None)
        if type(values) is not dict or "usage" not in values:
            return True
        usage = values["usage"]
        if usage is not None:
            if not values.get("choices"):
                return False  # the usage chunk asked for
            values["usage"] = None  # usage riding on a chunk of choices: as if never asked for
        fields_set = getattr(chunk, "__pydantic_fields_set__", None)
        if fields_set is not None:
            fields_set.discard("usage")
    except Exception:  # an object no chunk is made of: shown as it is
        pass
    return True


# -- request estimates -----------------------------------------------------------------------


def _part(acc: Acc, p: Mapping, depth: int) -> None:
    typ = p.get("type")
    if typ == "text":
        walk_text(acc, p.get("text"))
    elif typ == "image_url":
        acc.image(member(p.get("image_url"), "detail"))
    elif typ == "file" or typ == "input_audio":
        acc.document()
    elif typ == "refusal":
        walk_text(acc, p.get("refusal"))
    else:
        walk(acc, p, depth + 1)


_CHAT_EXTRAS = frozenset(
    (
        "tools",
        "functions",
        "response_format",
        "tool_choice",
        "function_call",
        "web_search_options",
        "prediction",
    )
)


def _chat_cap(kw: Mapping) -> int | None:
    # max_completion_tokens includes reasoning tokens; if both are given, the larger counts.
    cap = cap_value(kw.get("max_completion_tokens"))
    legacy = cap_value(kw.get("max_tokens"))
    if legacy is not None and (cap is None or legacy > cap):
        cap = legacy
    return cap


def _cap_and_choices(kw: dict) -> tuple[int | None, int] | None:
    """(output cap, choices) of a plain chat request that names more than its model and messages,
    or None when it has one of the extras (tools, response format, predictions, ...)."""
    for key in kw:  # none of the extras: cheaper than `isdisjoint` over a request's few keys
        if key in _CHAT_EXTRAS:
            return None
    cap = kw.get("max_completion_tokens")
    legacy = kw.get("max_tokens")
    if cap is not None or legacy is not None:
        cap = _chat_cap(kw)
    n = kw.get("n")
    return cap, 1 if n is None else choice_count(n)


def quick_chat(kw: dict) -> tuple[int, int, int | None, int] | None:
    """A `QuickReader`: what `walk_chat` counts, for the commonest chat request, without the walk: a
    list of messages that are each a dict of a role and a string content (each counted by
    `text_tokens`), and none of the extras. None for anything else."""
    messages = kw.get("messages")
    if type(messages) is not list:
        return None
    text = 0
    for message in messages:
        if type(message) is not dict or len(message) != 2 or "role" not in message:
            return None
        content = message.get("content")
        if type(content) is not str:
            return None
        text += text_tokens(content)
    if len(kw) == 2 and "model" in kw:  # the model and the messages: no extras, cap or `n`
        return text, PER_MESSAGE_TOKENS * len(messages), None, 1
    rest = _cap_and_choices(kw)
    return None if rest is None else (text, PER_MESSAGE_TOKENS * len(messages), *rest)


def sized_chat(kw: dict) -> tuple[int, int, int | None, int] | None:
    """A `SizeReader`: `quick_chat`'s requests, their text sized by `text_bytes` (its length, no
    more), written out. Its own function, not `quick_chat` with a measure passed in: it runs
    before every plain call of a tenant with a limit (`Guard.admit_plain`), where a call, a
    branch per message or a partial's indirection costs (measured in place)."""
    messages = kw.get("messages")
    if type(messages) is not list:
        return None
    text = 0
    for message in messages:
        if type(message) is not dict or len(message) != 2 or "role" not in message:
            return None
        content = message.get("content")
        if type(content) is not str:
            return None
        text += len(content) if content.isascii() else 4 * len(content)  # text_bytes(content)
    if len(kw) == 2 and "model" in kw:
        return text, PER_MESSAGE_TOKENS * len(messages), None, 1
    rest = _cap_and_choices(kw)
    return None if rest is None else (text, PER_MESSAGE_TOKENS * len(messages), *rest)


def walk_chat(acc: Acc, kw: Mapping) -> int | None:
    walk_messages(acc, kw.get("messages"), _part)
    for key in kw:
        if key not in _CHAT_EXTRAS:
            continue
        v = kw[key]
        if v is None:
            continue
        if key == "tools" or key == "functions":
            walk_tools(acc, v)
        elif key == "web_search_options":
            if as_mapping(v) is not None:
                acc.fixed += HOSTED_TOOL_TOKENS
        elif key == "prediction":
            # Predicted outputs: rejected prediction tokens are billed as completion tokens.
            prediction = as_mapping(v)
            if prediction is not None:
                pacc = Acc(0)
                walk_parts(pacc, prediction.get("content"), _part)
                acc.extra_output += pacc.text + pacc.fixed
        elif type(v) is str or isinstance(v, (list, tuple)) or as_mapping(v) is not None:
            walk(acc, v, 1)
    n = kw.get("n")
    if n is not None:
        acc.choices = choice_count(n)
    return _chat_cap(kw)


def _prompts(acc: Acc, prompt: Any) -> int:
    """Count a `prompt`/`input` (str, list of str, token ids, lists of token ids); return how
    many prompts it holds."""
    if type(prompt) is str:
        acc.text += text_tokens(prompt)
        return 1
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            return 1
        if all(type(x) is int for x in prompt):  # one prompt as token ids
            acc.fixed += len(prompt)
            return 1
        for x in prompt:
            if type(x) is str:
                acc.text += text_tokens(x)
            elif isinstance(x, (list, tuple)) and all(type(y) is int for y in x):
                acc.fixed += len(x)
            else:
                walk(acc, x, 2)
        return len(prompt)
    if prompt is not None and (isinstance(prompt, str) or as_mapping(prompt) is not None):
        walk(acc, prompt, 1)
    return 1


def walk_completions(acc: Acc, kw: Mapping) -> int:
    prompts = _prompts(acc, kw.get("prompt"))
    walk_text(acc, kw.get("suffix") if isinstance(kw.get("suffix"), str) else None)
    cap = cap_value(kw.get("max_tokens"))
    # best_of completions are generated server-side and all billed; n (or best_of) per prompt.
    acc.choices = max(choice_count(kw.get("n")), choice_count(kw.get("best_of"))) * prompts
    return 16 if cap is None else cap  # the API's default max_tokens is 16


def walk_embeddings(acc: Acc, kw: Mapping) -> int:
    _prompts(acc, kw.get("input"))
    return 0


#: `chat.completions.create(...)` (and the chat of the compatible SDKs).
CHAT = RequestFormat("openai chat completions", walk_chat, quick=quick_chat, sized=sized_chat, used=used_tokens)
#: Legacy `completions.create(...)`.
COMPLETIONS = RequestFormat("openai completions", walk_completions)
#: `embeddings.create(...)`: the input alone, no output.
EMBEDDINGS = RequestFormat("openai embeddings", walk_embeddings, embeds=True)
