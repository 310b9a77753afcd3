"""Worst-case token estimates of requests (tollmeter.limits.estimate and each wire format's
request format in tollmeter.formats)."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import pytest
from pydantic import BaseModel

from tollmeter.formats.anthropic_messages import MESSAGES
from tollmeter.formats.bedrock_invoke import INVOKE_MODEL
from tollmeter.formats.converse import CONVERSE
from tollmeter.formats.gemini import EMBED_CONTENT, GENERATE_CONTENT
from tollmeter.formats.openai_chat import CHAT, COMPLETIONS, EMBEDDINGS
from tollmeter.formats.openai_responses import RESPONSES
from tollmeter.limits import estimate as E
from tollmeter.limits.estimate import (
    GENERIC,
    RequestEstimate,
    RequestFormat,
    estimate_generic,
    estimate_request,
    max_output_tokens,
    text_tokens,
)

# -- the text rule against real tokenizers ---------------------------------------------------

# Real token counts of the text alone (no message framing):
#   cl100k / o200k: OpenAI's cl100k_base (GPT-4, GPT-3.5) and o200k_base (GPT-4o, GPT-4.1, o-series,
#     GPT-5) counted with tiktoken 0.14 over the exact BPE ranks bundled in the bpe-openai 0.1.4
#     wheel (offline; tiktoken itself downloads them). "The quick brown fox ..." is the well-known
#     10-token sentence in both.
#   claude3 / claude47: Claude 3 - 4.6 and Claude Opus 4.7+ counts reconstructed offline by
#     ctok 1.3.0 (fitted to Anthropic's count_tokens), message frame (7 / 11 tokens) removed.
SAMPLES: dict[str, tuple[str, dict[str, int]]] = {
    "fox": (
        "The quick brown fox jumps over the lazy dog.",
        {"cl100k": 10, "o200k": 10, "claude3": 11, "claude47": 18},
    ),
    "english": (
        "Tokenizers split text into pieces that the model has seen often during training. "
        "Common English words usually become a single token, while rare words, names and "
        "numbers are broken into several pieces. As a rule of thumb, one token is about four "
        "characters of English text, or three quarters of a word.",
        {"cl100k": 60, "o200k": 60, "claude3": 61, "claude47": 81},
    ),
    "legal_caps": (
        'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, '
        "INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A "
        "PARTICULAR PURPOSE AND NONINFRINGEMENT.",
        {"cl100k": 36, "o200k": 36, "claude3": 39, "claude47": 136},
    ),
    "python": (
        "def fibonacci(n: int) -> list[int]:\n"
        '    """Return the first n Fibonacci numbers."""\n'
        "    seq = [0, 1]\n"
        "    while len(seq) < n:\n"
        "        seq.append(seq[-1] + seq[-2])\n"
        "    return seq[:n]\n\n"
        'if __name__ == "__main__":\n'
        "    print(fibonacci(10))\n",
        {"cl100k": 70, "o200k": 69, "claude3": 83, "claude47": 112},
    ),
    "c_macros": (
        "#define ERR_R_X509V3_LIB (ERR_LIB_X509V3 /* 34 */ | ERR_RFLAG_COMMON)\n"
        "#define ERR_R_PKCS12_LIB (ERR_LIB_PKCS12 /* 35 */ | ERR_RFLAG_COMMON)\n",
        {"cl100k": 48, "o200k": 48, "claude3": 89, "claude47": 109},
    ),
    "json": (
        '{"id":"ord_48213","items":[{"sku":"A-1002","qty":2,"price":19.99},'
        '{"sku":"B-77","qty":1,"price":5.5}],"total":45.48,"paid":true}',
        {"cl100k": 54, "o200k": 55, "claude3": 60, "claude47": 73},
    ),
    "zh": (
        "自然语言处理是人工智能的一个重要分支，它研究如何让计算机理解和生成人类语言。",
        {"cl100k": 41, "o200k": 24, "claude3": 39, "claude47": 39},
    ),
    "ja": (
        "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
        {"cl100k": 39, "o200k": 32, "claude3": 38, "claude47": 38},
    ),
    "ko": (
        "대한민국은 동아시아의 한반도 남부에 위치한 민주공화국이다.",
        {"cl100k": 34, "o200k": 21, "claude3": 33, "claude47": 33},
    ),
    "emoji_mixed": (
        "Great job team! 🎉🚀 Let's ship it 💯",
        {"cl100k": 16, "o200k": 13, "claude3": 19, "claude47": 22},
    ),
}


def _claude_input(text: str, model: str) -> int:
    kw = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    return estimate_request(MESSAGES, kw, model).input_tokens


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_text_rule_bounds_real_tokenizers(name: str) -> None:
    text, real = SAMPLES[name]
    # OpenAI: the bare text bound, as embeddings bill it (no framing at all).
    est = estimate_request(EMBEDDINGS, {"input": text}, "text-embedding-3-small").input_tokens
    assert est == text_tokens(text)
    assert est >= real["cl100k"] and est >= real["o200k"]
    # Claude: the text x the model's factor, plus framing, bounds text + frame.
    assert _claude_input(text, "claude-sonnet-4-5") >= real["claude3"] + 7
    assert _claude_input(text, "claude-opus-4-7") >= real["claude47"] + 11
    # ... and the text alone, scaled, bounds the text alone.
    assert math.ceil(text_tokens(text) * 1.35) >= real["claude3"]
    assert math.ceil(text_tokens(text) * 1.65) >= real["claude47"]


def test_english_overestimate_is_bounded() -> None:
    # ~4.4-5 bytes per o200k token on English prose vs the rule's 2: about 2x-2.5x over (over a
    # corpus of ~400 English chunks the rule gave 2.05x of o200k, 2.45x of Claude 3 counts).
    for name in ("fox", "english"):
        text, real = SAMPLES[name]
        ratio = text_tokens(text) / real["o200k"]
        assert 1.5 <= ratio <= 2.6, (name, ratio)


def test_text_rule_arithmetic() -> None:
    assert text_tokens("") == 0
    assert text_tokens("a") == 1
    assert text_tokens("abcd") == 2  # 2 ASCII bytes per token
    assert text_tokens("1234567890") == 10  # one token per digit (Gemini, Qwen split digits)
    assert text_tokens("a1") == 2
    # CJK: 3 bytes per character at 1.5 bytes per token -> 2 tokens per character
    assert text_tokens("自然语言") == 8
    # Cyrillic / Greek: 2 bytes -> 4/3 token per letter
    assert text_tokens("привет") == 8
    assert text_tokens("😀") == 3  # 4 bytes
    # never below one token per 4 bytes of anything
    for text, _ in SAMPLES.values():
        assert text_tokens(text) >= len(text.encode()) / 4
    # lone surrogates (possible in str) do not raise
    assert text_tokens("a\ud800b") >= 2


def test_cjk_counts_more_than_bytes_over_three() -> None:
    text = SAMPLES["zh"][0] * 10
    assert text_tokens(text) >= 2 * len(text) - 10  # ~2 tokens per character
    assert text_tokens(text) >= max(SAMPLES["zh"][1].values()) * 10


def test_code_and_json_bounds() -> None:
    for name in ("python", "c_macros", "json"):
        text, real = SAMPLES[name]
        assert text_tokens(text) >= max(real["cl100k"], real["o200k"])


# -- OpenAI chat completions -----------------------------------------------------------------


def test_chat_minimal_exact() -> None:
    kw = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    est = estimate_request(CHAT, kw, "gpt-4o")
    assert est == RequestEstimate(
        input_tokens=E.PER_REQUEST_TOKENS + E.PER_MESSAGE_TOKENS + text_tokens("hi"),
        output_tokens=50,
        images=0,
    )


def test_chat_three_messages_upper_bound() -> None:
    system = "You are a helpful assistant."
    question = "What is the capital of France?"
    kw = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
            {"role": "assistant", "content": "Paris."},
        ],
    }
    est = estimate_request(CHAT, kw, "gpt-4o-mini")
    # OpenAI bills this prompt at 26 tokens (3 per message + content + 3 reply priming).
    assert est.input_tokens >= 26
    assert est.input_tokens == 12 + 3 * 5 + sum(
        text_tokens(t) for t in (system, question, "Paris.")
    )
    assert est.output_tokens == 16_384  # no cap: gpt-4o-mini's maximum
    assert est.images == 0


def test_chat_caps_and_n() -> None:
    base = {"model": "o3", "messages": [{"role": "user", "content": "x"}]}
    assert (
        estimate_request(
            CHAT, {**base, "max_completion_tokens": 1000}, "o3"
        ).output_tokens
        == 1000
    )
    assert (
        estimate_request(CHAT, {**base, "max_tokens": 700}, "o3").output_tokens == 700
    )
    both = {**base, "max_tokens": 700, "max_completion_tokens": 900}
    assert estimate_request(CHAT, both, "o3").output_tokens == 900
    assert (
        estimate_request(
            CHAT, {**base, "max_tokens": 500, "n": 3}, "o3"
        ).output_tokens
        == 1500
    )
    # no cap: the model's maximum, per choice
    assert estimate_request(CHAT, {**base, "n": 2}, "o3").output_tokens == 200_000


def test_chat_parts_tools_and_format() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "City name"}},
                    "required": ["city"],
                },
            },
        }
    ]
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5000}},
                {"type": "file", "file": {"file_id": "file-abc"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    plain = estimate_request(CHAT, {"messages": messages}, "gpt-4o")
    assert plain.images == 2
    # image (4,000) + file (30,000); the 5,000-char data URL is not counted as text
    assert (
        E.IMAGE_TOKENS + E.DOCUMENT_TOKENS
        < plain.input_tokens
        < E.IMAGE_TOKENS + E.DOCUMENT_TOKENS + 200
    )
    with_tools = estimate_request(
        CHAT, {"messages": messages, "tools": tools}, "gpt-4o"
    )
    assert with_tools.input_tokens - plain.input_tokens >= 40  # the schema's words and keys
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}},
    }
    formatted = estimate_request(
        CHAT, {"messages": messages, "response_format": schema}, "gpt-4o"
    )
    assert formatted.input_tokens > plain.input_tokens
    # gpt-4o-mini bills images at up to 48,169 tokens
    mini = estimate_request(CHAT, {"messages": messages}, "gpt-4o-mini")
    assert mini.input_tokens - plain.input_tokens == E.IMAGE_TOKENS_GPT_4O_MINI - E.IMAGE_TOKENS


def test_chat_prediction_adds_output() -> None:
    prediction = "class User:\n    name: str\n    email: str\n"
    kw = {
        "messages": [{"role": "user", "content": "Rename email to mail."}],
        "prediction": {"type": "content", "content": prediction},
        "max_completion_tokens": 100,
    }
    est = estimate_request(CHAT, kw, "gpt-4o")
    assert est.output_tokens == 100 + text_tokens(prediction)


def test_chat_accepts_sdk_message_objects() -> None:
    from openai.types.chat import ChatCompletionMessage

    reply = ChatCompletionMessage(role="assistant", content="The answer is 42.")
    kw = {"messages": [{"role": "user", "content": "question"}, reply], "max_tokens": 10}
    est = estimate_request(CHAT, kw, "gpt-4o")
    assert est.input_tokens >= 12 + 2 * 5 + text_tokens("The answer is 42.") + text_tokens(
        "question"
    )


# -- legacy completions, embeddings ----------------------------------------------------------


def test_completions() -> None:
    est = estimate_request(
        COMPLETIONS, {"prompt": "Say this is a test"}, "gpt-3.5-turbo-instruct"
    )
    assert est.output_tokens == 16  # the API's default max_tokens
    assert est.input_tokens == 12 + text_tokens("Say this is a test")
    kw = {"prompt": ["one", "two"], "max_tokens": 10, "n": 2, "best_of": 3}
    assert estimate_request(COMPLETIONS, kw, "davinci-002").output_tokens == 10 * 3 * 2
    ids = estimate_request(COMPLETIONS, {"prompt": [1, 2, 3, 4], "max_tokens": 5}, "davinci-002")
    assert ids.input_tokens == 12 + 4 and ids.output_tokens == 5
    batch = estimate_request(
        COMPLETIONS, {"prompt": [[1, 2], [3, 4, 5]], "max_tokens": 5}, "davinci-002"
    )
    assert batch.input_tokens == 12 + 5 and batch.output_tokens == 10


def test_embeddings() -> None:
    model = "text-embedding-3-small"
    assert estimate_request(EMBEDDINGS, {"input": "hello world"}, model) == RequestEstimate(
        text_tokens("hello world"), 0, 0
    )
    many = estimate_request(EMBEDDINGS, {"input": ["a b", "c d e"]}, model)
    assert (
        many.input_tokens == text_tokens("a b") + text_tokens("c d e") and many.output_tokens == 0
    )
    assert estimate_request(EMBEDDINGS, {"input": [1, 2, 3]}, model).input_tokens == 3
    assert estimate_request(EMBEDDINGS, {"input": [[1, 2], [3]]}, model).input_tokens == 3
    assert max_output_tokens(model) == 0


# -- OpenAI Responses ------------------------------------------------------------------------


def test_responses_string_input() -> None:
    kw = {
        "model": "gpt-5",
        "input": "Write a haiku.",
        "instructions": "Be brief.",
        "max_output_tokens": 300,
    }
    est = estimate_request(RESPONSES, kw, "gpt-5")
    assert est.input_tokens == 12 + 2 * 5 + text_tokens("Write a haiku.") + text_tokens("Be brief.")
    assert est.output_tokens == 300
    assert estimate_request(RESPONSES, {"input": "x"}, "gpt-5").output_tokens == 128_000


def test_responses_items_parts_and_tools() -> None:
    kw = {
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Describe these."},
                    {"type": "input_image", "image_url": "https://example.com/cat.png"},
                    {"type": "input_image", "file_id": "file-1", "detail": "original"},
                    {"type": "input_file", "file_id": "file-2"},
                ],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup",
                "arguments": '{"q": "cat"}',
            },
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": "A small domesticated feline.",
            },
            {"type": "item_reference", "id": "msg_123"},
        ],
        "tools": [
            {
                "type": "function",
                "name": "lookup",
                "parameters": {"type": "object", "properties": {}},
            },
            {"type": "web_search"},
        ],
    }
    est = estimate_request(RESPONSES, kw, "gpt-5")
    assert est.images == 3
    floor = (
        E.IMAGE_TOKENS
        + E.IMAGE_TOKENS_ORIGINAL_DETAIL
        + E.DOCUMENT_TOKENS
        + E.STORED_CONTEXT_TOKENS
        + E.HOSTED_TOOL_TOKENS
        + text_tokens("A small domesticated feline.")
        + text_tokens("Describe these.")
    )
    assert est.input_tokens > floor
    assert est.input_tokens < floor + 300
    chained = estimate_request(
        RESPONSES, {"input": "next", "previous_response_id": "resp_1"}, "gpt-5"
    )
    assert chained.input_tokens >= E.STORED_CONTEXT_TOKENS


# -- Anthropic Messages ----------------------------------------------------------------------


def test_messages_blocks() -> None:
    kw = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [
            {
                "type": "text",
                "text": "You are a careful analyst.",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBOR" * 1000,
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBER",
                        },
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": "Plain notes.",
                        },
                    },
                    {"type": "text", "text": "Compare them."},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "Let me look at the chart first.",
                        "signature": "sig",
                    },
                    {"type": "tool_use", "id": "tu_1", "name": "zoom", "input": {"x": 10, "y": 20}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "tu_1",
                        "content": [
                            {"type": "text", "text": "zoomed"},
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "https://example.com/z.png"},
                            },
                        ],
                    }
                ],
            },
        ],
    }
    est = estimate_request(MESSAGES, kw, "claude-sonnet-4-5")
    assert est.output_tokens == 2048  # the thinking budget is inside max_tokens
    assert est.images == 3  # two images, one PDF; the text document is counted as text
    floor = 2 * E.IMAGE_TOKENS_CLAUDE + E.DOCUMENT_TOKENS
    assert floor + 40 < est.input_tokens < floor + 300
    # the base64 image data is not counted as text
    assert est.input_tokens < floor + 1000
    # Claude Opus 4.7+: high-resolution images and the new tokenizer
    new = estimate_request(MESSAGES, kw, "claude-opus-4-7")
    assert new.input_tokens - est.input_tokens >= 2 * (
        E.IMAGE_TOKENS_CLAUDE_HIGH_RES - E.IMAGE_TOKENS_CLAUDE
    )


def test_messages_tools() -> None:
    base = {"max_tokens": 100, "messages": [{"role": "user", "content": "List files."}]}
    plain = estimate_request(MESSAGES, base, "claude-haiku-4-5").input_tokens
    custom = {
        "name": "list_files",
        "description": "List the files in a directory.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
    with_tool = estimate_request(
        MESSAGES, {**base, "tools": [custom]}, "claude-haiku-4-5"
    ).input_tokens
    assert with_tool - plain >= E.TOOLS_SYSTEM_PROMPT_TOKENS + 20
    bash = {"type": "bash_20250124", "name": "bash"}
    with_bash = estimate_request(
        MESSAGES, {**base, "tools": [custom, bash]}, "claude-haiku-4-5"
    ).input_tokens
    assert with_bash - with_tool >= E.ANTHROPIC_DEFINED_TOOL_TOKENS
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    with_search = estimate_request(
        MESSAGES, {**base, "tools": [search]}, "claude-haiku-4-5"
    ).input_tokens
    assert with_search - plain >= E.HOSTED_TOOL_TOKENS


def test_messages_accepts_sdk_content_blocks() -> None:
    from anthropic.types import TextBlock, ToolUseBlock

    content = [
        TextBlock(type="text", text="Checking the weather."),
        ToolUseBlock(type="tool_use", id="tu_1", name="weather", input={"city": "Oslo"}),
    ]
    kw = {
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": content},
        ],
    }
    est = estimate_request(MESSAGES, kw, "claude-sonnet-4-5")
    assert est.input_tokens >= 12 + 10 + text_tokens("Checking the weather.") + text_tokens("Oslo")


def test_messages_without_max_tokens_uses_model_maximum() -> None:
    kw = {"messages": [{"role": "user", "content": "hi"}]}
    assert estimate_request(MESSAGES, kw, "claude-opus-4-1").output_tokens == 32_000
    assert estimate_request(MESSAGES, kw, None).output_tokens == E.UNKNOWN_MODEL_MAX_OUTPUT_TOKENS


# -- Google Gen AI ---------------------------------------------------------------------------


class Blob(BaseModel):
    mime_type: str | None = None
    data: bytes | None = None


class Part(BaseModel):
    text: str | None = None
    inline_data: Blob | None = None
    thought_signature: bytes | None = None


class Content(BaseModel):
    role: str | None = None
    parts: list[Part] | None = None


class FunctionDeclaration(BaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    function_declarations: list[FunctionDeclaration] | None = None
    google_search: dict[str, Any] | None = None


class GenerateContentConfig(BaseModel):
    """The attributes of google.genai.types.GenerateContentConfig that the estimate reads."""

    system_instruction: str | Content | None = None
    tools: list[Tool] | None = None
    max_output_tokens: int | None = None
    candidate_count: int | None = None
    temperature: float | None = None


def test_generate_content_string_and_dict_config() -> None:
    kw = {
        "contents": "Explain photosynthesis.",
        "config": {
            "system_instruction": "Answer like a teacher.",
            "max_output_tokens": 500,
            "candidate_count": 2,
        },
    }
    est = estimate_request(GENERATE_CONTENT, kw, "gemini-2.5-flash")
    assert est.output_tokens == 1000
    assert est.input_tokens == 12 + 2 * 5 + text_tokens("Explain photosynthesis.") + text_tokens(
        "Answer like a teacher."
    )
    assert (
        estimate_request(GENERATE_CONTENT, {"contents": "x"}, "gemini-2.5-pro").output_tokens
        == 65_536
    )
    camel = {"contents": "x", "config": {"maxOutputTokens": 64, "candidateCount": 3}}
    assert estimate_request(GENERATE_CONTENT, camel, "gemini-2.0-flash").output_tokens == 192


def test_generate_content_parts_and_config_object() -> None:
    contents = [
        Content(
            role="user",
            parts=[
                Part(text="What does this chart show?"),
                Part(inline_data=Blob(mime_type="image/jpeg", data=b"\xff\xd8" * 1000)),
                Part(inline_data=Blob(mime_type="application/pdf", data=b"%PDF")),
            ],
        ),
        {"role": "model", "parts": [{"text": "A rising trend.", "thought_signature": b"sig"}]},
        {
            "role": "user",
            "parts": [{"file_data": {"file_uri": "gs://b/v.mp4", "mime_type": "video/mp4"}}],
        },
    ]
    config = GenerateContentConfig(
        system_instruction=Content(parts=[Part(text="Be precise.")]),
        tools=[
            Tool(
                function_declarations=[
                    FunctionDeclaration(
                        name="get_stock", description="Stock price.", parameters={"type": "object"}
                    )
                ]
            ),
            Tool(google_search={}),
        ],
        max_output_tokens=256,
        candidate_count=2,
    )
    est = estimate_request(
        GENERATE_CONTENT, {"contents": contents, "config": config}, "gemini-2.5-pro"
    )
    assert est.output_tokens == 512
    assert est.images == 3  # image, PDF, video
    floor = E.IMAGE_TOKENS + 2 * E.DOCUMENT_TOKENS + E.HOSTED_TOOL_TOKENS
    assert floor + 30 < est.input_tokens < floor + 300


# -- Bedrock Converse ------------------------------------------------------------------------


def test_converse() -> None:
    kw = {
        "modelId": "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "system": [{"text": "You are a claims assistant."}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Assess this claim."},
                    {"image": {"format": "png", "source": {"bytes": b"\x89PNG" * 500}}},
                    {"document": {"format": "pdf", "name": "claim", "source": {"bytes": b"%PDF"}}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "policy", "input": {"id": 7}}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "t1",
                            "content": [{"json": {"covered": True}}, {"text": "ok"}],
                        }
                    }
                ],
            },
        ],
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "policy",
                        "description": "Look up a policy.",
                        "inputSchema": {"json": {"type": "object"}},
                    }
                }
            ]
        },
        "inferenceConfig": {"maxTokens": 4000, "temperature": 0.2},
    }
    est = estimate_request(CONVERSE, kw, None)  # the model comes from modelId
    assert est.output_tokens == 4000
    assert est.images == 2
    floor = E.IMAGE_TOKENS_CLAUDE + E.DOCUMENT_TOKENS + E.TOOLS_SYSTEM_PROMPT_TOKENS
    assert floor + 30 < est.input_tokens < floor + 300
    no_cap = dict(kw, inferenceConfig={"temperature": 0})
    assert estimate_request(CONVERSE, no_cap, None).output_tokens == 64_000  # Claude 3.7 Sonnet


# -- anything else ---------------------------------------------------------------------------


def test_unknown_endpoint_counts_every_string() -> None:
    kw = {
        "model": "llama-3.3-70b",
        "prompt": "Tell me a story about a dragon.",
        "options": {"stop": ["\n\n"]},
    }
    est = estimate_generic(kw, "llama-3.3-70b")
    assert est.input_tokens >= text_tokens("Tell me a story about a dragon.") + text_tokens(
        "llama-3.3-70b"
    )
    assert est.output_tokens == E.DEFAULT_MAX_OUTPUT_TOKENS
    # an explicit cap never lowers the bound below the model's maximum here
    assert (
        estimate_generic({**kw, "max_tokens": 100_000}, "llama-3.3-70b").output_tokens
        == 100_000
    )
    assert (
        estimate_generic({**kw, "max_tokens": 10}, "llama-3.3-70b").output_tokens
        == E.DEFAULT_MAX_OUTPUT_TOKENS
    )


# -- sentinels and odd input -----------------------------------------------------------------


def test_sdk_sentinels_are_absent() -> None:
    import anthropic
    import openai

    messages = [{"role": "user", "content": "hi"}]
    for sentinel in (openai.NOT_GIVEN, openai.omit, anthropic.NOT_GIVEN):
        kw = {
            "messages": messages,
            "max_tokens": sentinel,
            "max_completion_tokens": sentinel,
            "n": sentinel,
            "tools": sentinel,
            "response_format": sentinel,
            "prediction": sentinel,
        }
        est = estimate_request(CHAT, kw, "gpt-4o")
        assert est == estimate_request(CHAT, {"messages": messages}, "gpt-4o")
        assert est.output_tokens == 16_384
        akw = {"messages": messages, "max_tokens": 100, "system": sentinel, "tools": sentinel}
        assert (
            estimate_request(MESSAGES, akw, "claude-sonnet-4").input_tokens
            == estimate_request(
                MESSAGES, {"messages": messages, "max_tokens": 100}, "claude-sonnet-4"
            ).input_tokens
        )
        rkw = {
            "input": "x",
            "max_output_tokens": sentinel,
            "instructions": sentinel,
            "tools": sentinel,
        }
        assert estimate_request(RESPONSES, rkw, "gpt-4.1").output_tokens == 32_768


@pytest.mark.parametrize(
    "endpoint",
    [
        CHAT,
        COMPLETIONS,
        RESPONSES,
        EMBEDDINGS,
        MESSAGES,
        GENERATE_CONTENT,
        EMBED_CONTENT,
        CONVERSE,
        INVOKE_MODEL,
        GENERIC,
    ],
    ids=lambda f: f.name,
)
def test_odd_input_never_raises(endpoint: RequestFormat) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(name)

    class BadDump:
        def model_dump(self, **_: Any) -> Any:
            raise ValueError("no")

    deep: Any = "bottom"
    for _ in range(5_000):
        deep = [deep]
    cyclic: dict[str, Any] = {"a": "text"}
    cyclic["self"] = cyclic
    cyclic["again"] = cyclic
    odd_values: list[Any] = [
        None,
        0,
        -5,
        True,
        3.5,
        "str",
        b"bytes",
        [],
        {},
        [None, 5, "x", b"y"],
        Exploding(),
        BadDump(),
        deep,
        cyclic,
        {"role": "user", "content": {"type": "nonsense"}},
        object(),
        {1: 2},
    ]
    for value in odd_values:
        for key in (
            "messages",
            "input",
            "prompt",
            "contents",
            "system",
            "tools",
            "config",
            "max_tokens",
            "n",
        ):
            est = estimate_request(endpoint, {key: value}, "gpt-4o")
            assert isinstance(est, RequestEstimate)
            assert est.input_tokens >= 0 and est.output_tokens >= 0 and est.images >= 0
        est = estimate_request(
            endpoint, {"messages": [value], "contents": [value], "input": [value]}, None
        )
        assert isinstance(est, RequestEstimate)
    for kwargs in (None, [], "text", 5, {}, {"model": 7}, {"modelId": None}):
        est = estimate_request(endpoint, kwargs, None)  # type: ignore[arg-type]
        assert isinstance(est, RequestEstimate) and est.output_tokens >= 0


def test_deep_and_cyclic_structures_are_conservative() -> None:
    deep: Any = "x"
    for _ in range(10_000):
        deep = {"k": deep}
    est = estimate_generic({"payload": deep}, "gpt-4o")
    assert est.input_tokens >= E.TRUNCATED_TOKENS
    cyclic: list[Any] = ["y"]
    cyclic.append(cyclic)
    cyclic.append(cyclic)
    start = time.perf_counter()
    est = estimate_request(
        CHAT, {"messages": [{"role": "user", "content": cyclic}]}, "gpt-4o"
    )
    assert est.input_tokens >= E.TRUNCATED_TOKENS
    assert time.perf_counter() - start < 10


def test_bool_and_negative_caps_are_absent() -> None:
    base = {"messages": [{"role": "user", "content": "x"}]}
    assert (
        estimate_request(CHAT, {**base, "max_tokens": True}, "gpt-4o").output_tokens
        == 16_384
    )
    assert (
        estimate_request(CHAT, {**base, "max_tokens": -1}, "gpt-4o").output_tokens
        == 16_384
    )
    assert (
        estimate_request(CHAT, {**base, "max_tokens": "100"}, "gpt-4o").output_tokens
        == 16_384
    )
    assert (
        estimate_request(
            CHAT, {**base, "max_tokens": 10, "n": 0}, "gpt-4o"
        ).output_tokens
        == 10
    )
    assert (
        estimate_request(
            CHAT, {**base, "max_tokens": 10, "n": True}, "gpt-4o"
        ).output_tokens
        == 10
    )


def test_request_estimate_is_a_frozen_slotted_dataclass() -> None:
    est = estimate_request(CHAT, {"messages": []}, "gpt-4o")
    assert dataclasses.is_dataclass(est) and not hasattr(est, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.input_tokens = 1  # type: ignore[misc]
    assert est == RequestEstimate(est.input_tokens, est.output_tokens, est.images)
    assert hash(est) == hash(RequestEstimate(est.input_tokens, est.output_tokens, est.images))


# -- max_output_tokens -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", 16_384),
        ("gpt-4o-2024-08-06", 16_384),
        ("gpt-4o-mini", 16_384),
        ("openai/gpt-4o-mini", 16_384),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", 16_384),
        ("gpt-4.1", 32_768),
        ("gpt-4.1-nano-2025-04-14", 32_768),
        ("gpt-4-turbo", 4_096),
        ("gpt-4-0613", 8_192),
        ("gpt-3.5-turbo", 4_096),
        ("o1", 100_000),
        ("o1-mini", 65_536),
        ("o3-mini", 100_000),
        ("o4-mini-2025-04-16", 100_000),
        ("gpt-5", 128_000),
        ("gpt-5-mini", 128_000),
        ("gpt-5.4", 128_000),
        ("gpt-5-chat-latest", 16_384),
        ("gpt-5-pro", 272_000),
        ("claude-3-5-sonnet-20241022", 8_192),
        ("claude-3-5-haiku-latest", 8_192),
        ("claude-3-opus-20240229", 4_096),
        ("claude-3-7-sonnet-20250219", 64_000),
        ("anthropic/claude-3.7-sonnet", 64_000),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", 64_000),
        ("claude-sonnet-4-20250514", 64_000),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", 64_000),
        ("claude-sonnet-4-6", 128_000),
        ("claude-opus-4-20250514", 32_000),
        ("claude-opus-4-1", 32_000),
        ("claude-opus-4-5", 64_000),
        ("claude-opus-4-7", 128_000),
        ("claude-haiku-4-5@20251001", 64_000),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", 64_000),
        ("claude-mythos-preview", 128_000),
        ("gemini-2.5-pro", 65_536),
        ("models/gemini-2.5-flash", 65_536),
        ("gemini-2.0-flash-001", 8_192),
        ("gemini-1.5-pro", 8_192),
        ("gemini-3-pro-preview", 65_536),
        ("deepseek-chat", 8_192),
        ("deepseek-reasoner", 65_536),
        ("meta.llama3-1-70b-instruct-v1:0", E.DEFAULT_MAX_OUTPUT_TOKENS),
        ("mistral-large-latest", E.DEFAULT_MAX_OUTPUT_TOKENS),
        ("text-embedding-3-large", 0),
        (None, E.UNKNOWN_MODEL_MAX_OUTPUT_TOKENS),
        ("", E.UNKNOWN_MODEL_MAX_OUTPUT_TOKENS),
        (42, E.UNKNOWN_MODEL_MAX_OUTPUT_TOKENS),
    ],
)
def test_max_output_tokens(model: Any, expected: int) -> None:
    assert max_output_tokens(model) == expected


def test_model_factor_by_claude_version() -> None:
    text = "word " * 200
    kw = {"max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    base = text_tokens(text)
    fixed = 12 + 5
    assert (
        estimate_request(MESSAGES, kw, "claude-3-5-haiku-20241022").input_tokens
        == math.ceil(base * 1.35) + fixed
    )
    assert (
        estimate_request(MESSAGES, kw, "claude-opus-4-7").input_tokens
        == math.ceil(base * 1.65) + fixed
    )
    assert (
        estimate_request(MESSAGES, kw, "claude-opus-5").input_tokens
        == math.ceil(base * 1.65) + fixed
    )
    assert estimate_request(MESSAGES, kw, None).input_tokens == math.ceil(base * 1.65) + fixed
    # OpenAI-compatible gateways serving Claude get the Claude factor too
    chat = {"messages": [{"role": "user", "content": text}], "max_tokens": 1}
    assert estimate_request(
        CHAT, chat, "anthropic/claude-sonnet-4.5"
    ).input_tokens == (math.ceil(base * 1.35) + fixed)
    assert estimate_request(CHAT, chat, "gpt-4o").input_tokens == base + fixed


# -- speed -----------------------------------------------------------------------------------


def test_typical_chat_request_is_fast() -> None:
    kw = {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "system",
                "content": "You are a helpful customer-support assistant for Acme Inc.",
            },
            {"role": "user", "content": "My order #48213 hasn't arrived yet. Can you check?"},
            {"role": "assistant", "content": "I'm sorry about the delay. Let me look into it."},
        ],
        "max_tokens": 300,
    }
    estimate_request(CHAT, kw, "gpt-4o-mini")
    runs = 2_000
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(runs):
            estimate_request(CHAT, kw, "gpt-4o-mini")
        best = min(best, (time.perf_counter() - start) / runs)
    assert best < 100e-6  # ~3-5 µs on a developer machine; generous for shared CI
