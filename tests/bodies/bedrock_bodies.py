"""Amazon Bedrock Runtime responses, as the service sends them, for tests.

Shapes follow botocore's service model (``botocore/data/bedrock-runtime/2023-09-30/
service-2.json``: ``ConverseResponse``, ``TokenUsage`` with ``cacheDetails``,
``ConverseStreamOutput``, ``ResponseStream``), the model-parameter pages of the Bedrock user
guide for the InvokeModel bodies of each family, and recorded traffic:

* Converse ``usage.inputTokens`` counts only the input neither read from nor written to the
  cache; ``cacheReadInputTokens`` / ``cacheWriteInputTokens`` come beside it and
  ``totalTokens`` = input + output + cache read + cache write. ``cacheDetails`` splits the cache
  writes by TTL, 1h before 5m, and is absent when nothing was written. The service also sends
  ``cacheReadInputTokenCount`` / ``cacheWriteInputTokenCount`` duplicates and
  ``serverToolUsage``, which botocore's parser drops (not in its model).
* Event-stream payloads carry a random-length ``"p"`` padding field, which botocore drops too.
* InvokeModel responses carry Bedrock's own counts in headers (input without the cache, like
  Converse); a streamed InvokeModel adds ``amazon-bedrock-invocationMetrics`` to its last chunk.

Converse bodies are JSON objects (dicts here); a ConverseStream is a list of
``(event type, payload)``; an InvokeModel body is the model's JSON (a dict); an
InvokeModelWithResponseStream is a list of chunk payloads (the model's JSON, dicts), which the
service base64-encodes into ``{"bytes": ..., "p": ...}`` event payloads.
"""

from __future__ import annotations

CLAUDE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
CLAUDE_45 = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_45_US = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_HAIKU_45 = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
CLAUDE_ARN = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20241022-v2:0"
NOVA = "us.amazon.nova-pro-v1:0"
LLAMA = "meta.llama3-1-70b-instruct-v1:0"
TITAN = "amazon.titan-text-express-v1"
TITAN_EMBED = "amazon.titan-embed-text-v2:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
MISTRAL_LARGE = "mistral.mistral-large-2407-v1:0"
COHERE = "cohere.command-r-plus-v1:0"
GPT_OSS = "openai.gpt-oss-120b-1:0"
ROUTER = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"

REQUEST_ID = "f3b0c1e2-7a6d-4c4b-9d1e-2b7e8c9a0d11"

JSON_HEADERS = {"Content-Type": "application/json", "x-amzn-RequestId": REQUEST_ID}
STREAM_HEADERS = {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": REQUEST_ID}
INVOKE_STREAM_HEADERS = {**STREAM_HEADERS, "X-Amzn-Bedrock-Content-Type": "application/json"}


def invoke_headers(input_tokens=None, output_tokens=None, cache_read=None, cache_write=None, latency=812):
    """Headers of an InvokeModel response: Bedrock's own counts (None: header not sent)."""
    headers = {**JSON_HEADERS, "X-Amzn-Bedrock-Invocation-Latency": str(latency)}
    for name, value in (("Input-Token-Count", input_tokens), ("Output-Token-Count", output_tokens),
                        ("Cache-Read-Input-Token-Count", cache_read),
                        ("Cache-Write-Input-Token-Count", cache_write)):
        if value is not None:
            headers[f"X-Amzn-Bedrock-{name}"] = str(value)
    return headers


# -- Converse ----------------------------------------------------------------------------------

# 25 in, 96 out
CONVERSE_PLAIN = {
    "metrics": {"latencyMs": 1021},
    "output": {"message": {"content": [{"text": "The capital of France is Paris."}], "role": "assistant"}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 25, "outputTokens": 96, "totalTokens": 121},
}

# 18 uncached + 7,502 written to the cache (5 minutes), 386 out; total 7,906
CONVERSE_CACHE_WRITE = {
    "metrics": {"latencyMs": 5391},
    "output": {"message": {"content": [{"text": "Here is a summary of the contract..."}], "role": "assistant"}},
    "stopReason": "end_turn",
    "usage": {
        "cacheDetails": [{"inputTokens": 7502, "ttl": "5m"}],
        "cacheReadInputTokenCount": 0,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokenCount": 7502,
        "cacheWriteInputTokens": 7502,
        "inputTokens": 18,
        "outputTokens": 386,
        "serverToolUsage": {},
        "totalTokens": 7906,
    },
}

# 18 uncached + 7,502 read from the cache, 503 out; total 8,023 (no cacheDetails: nothing written)
CONVERSE_CACHE_READ = {
    "metrics": {"latencyMs": 2870},
    "output": {"message": {"content": [{"text": "The termination clause says..."}], "role": "assistant"}},
    "stopReason": "end_turn",
    "usage": {
        "cacheReadInputTokenCount": 7502,
        "cacheReadInputTokens": 7502,
        "cacheWriteInputTokenCount": 0,
        "cacheWriteInputTokens": 0,
        "inputTokens": 18,
        "outputTokens": 503,
        "serverToolUsage": {},
        "totalTokens": 8023,
    },
}

# 12 uncached + 5,120 written (4,096 for 1 hour, 1,024 for 5 minutes), 210 out; total 5,342
CONVERSE_CACHE_1H = {
    "metrics": {"latencyMs": 4102},
    "output": {"message": {"content": [{"text": "I have read the handbook."}], "role": "assistant"}},
    "stopReason": "end_turn",
    "usage": {
        "cacheDetails": [{"inputTokens": 4096, "ttl": "1h"}, {"inputTokens": 1024, "ttl": "5m"}],
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 5120,
        "inputTokens": 12,
        "outputTokens": 210,
        "totalTokens": 5342,
    },
}

# 611 in, 143 out; two tool calls
CONVERSE_TOOL_USE = {
    "metrics": {"latencyMs": 1873},
    "output": {
        "message": {
            "content": [
                {"text": "I'll check the weather in both cities."},
                {"toolUse": {"input": {"city": "Paris"}, "name": "get_weather",
                             "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"}},
                {"toolUse": {"input": {"city": "Lyon"}, "name": "get_weather",
                             "toolUseId": "tooluse_1X9c3Vq0TLGq6b1nW2Jm5A"}},
            ],
            "role": "assistant",
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 611, "outputTokens": 143, "totalTokens": 754},
}

# 180 uncached + 1,024 read from the cache, 163 out; total 1,367; priority tier
CONVERSE_NOVA = {
    "metrics": {"latencyMs": 612},
    "output": {"message": {"content": [{"text": "Bonjour !"}], "role": "assistant"}},
    "serviceTier": {"type": "priority"},
    "stopReason": "end_turn",
    "usage": {"cacheReadInputTokens": 1024, "cacheWriteInputTokens": 0, "inputTokens": 180,
              "outputTokens": 163, "totalTokens": 1367},
}

# 40 in, 12 out; a prompt router sent the request to Claude 3.5 Haiku
CONVERSE_ROUTED = {
    "metrics": {"latencyMs": 433},
    "output": {"message": {"content": [{"text": "4"}], "role": "assistant"}},
    "stopReason": "end_turn",
    "trace": {"promptRouter": {
        "invokedModelId": "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                          "us.anthropic.claude-3-5-haiku-20241022-v1:0"}},
    "usage": {"inputTokens": 40, "outputTokens": 12, "totalTokens": 52},
}

# no usage at all (a malformed or truncated response): nothing is invented
CONVERSE_NO_USAGE = {
    "metrics": {"latencyMs": 100},
    "output": {"message": {"content": [{"text": "ok"}], "role": "assistant"}},
    "stopReason": "end_turn",
}

# 1,000 in, 20 out, with odd values: a string count and a negative cache read (dropped)
CONVERSE_ODD_USAGE = {
    "metrics": {"latencyMs": 100},
    "output": {"message": {"content": [{"text": "ok"}], "role": "assistant"}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 1000, "outputTokens": 20, "totalTokens": 1020, "cacheReadInputTokens": -5,
              "cacheDetails": [{"ttl": "1h"}]},
}

# -- errors ------------------------------------------------------------------------------------

THROTTLING = {"message": "Too many requests, please wait before trying again."}
THROTTLING_HEADERS = {
    "Content-Type": "application/json",
    "x-amzn-RequestId": "0c5b0f2e-9a51-4f0a-8d2f-5d8c2c7f1e90",
    "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
}
VALIDATION = {"message": "The provided model identifier is invalid."}
VALIDATION_HEADERS = {
    "Content-Type": "application/json",
    "x-amzn-RequestId": "6e1f4a3b-22c8-4d0e-b1a7-93c0f5d2e4aa",
    "x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
}

# -- ConverseStream: (event type, payload) ---------------------------------------------------

# 25 in, 96 out
STREAM_PLAIN = [
    ("messageStart", {"p": "abcdefghijklmnopqrstu", "role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "The capital"}, "p": "abcdefghijklmnop"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " of France"}, "p": "abcdefghijk"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " is Paris."}, "p": "abcdefghijklmnopqrstuvw"}),
    ("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"}),
    ("messageStop", {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP", "stopReason": "end_turn"}),
    ("metadata", {"metrics": {"latencyMs": 663}, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
                  "usage": {"inputTokens": 25, "outputTokens": 96, "totalTokens": 121}}),
]

# 611 in, 143 out; one tool call after some text
STREAM_TOOL_USE = [
    ("messageStart", {"p": "abcdefghijklmn", "role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me check."}, "p": "abcdefgh"}),
    ("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefghijklmnopqrstuvwxyzABCD"}),
    ("contentBlockStart", {"contentBlockIndex": 1, "p": "abcdefghijklmnopqrstu",
                           "start": {"toolUse": {"name": "get_weather",
                                                 "toolUseId": "tooluse_Sb4NM4kzQ8y2b6Wc1Ji9Tg"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\": "}}, "p": "abcdefgh"}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}, "p": "abcdefghij"}),
    ("contentBlockStop", {"contentBlockIndex": 1, "p": "abcdefghijklmnopqrstuvwxyzAB"}),
    ("messageStop", {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN", "stopReason": "tool_use"}),
    ("metadata", {"metrics": {"latencyMs": 1544}, "p": "abcdefghijklmnopqrstuvwxyzA",
                  "usage": {"inputTokens": 611, "outputTokens": 143, "totalTokens": 754}}),
]

# 12 uncached + 48,213 read + 3,070 written (2,816 for 1 hour, 254 for 5 minutes), 318 out; total 51,613
STREAM_CACHED = [
    ("messageStart", {"p": "abcdefghijklmnopq", "role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Per the handbook,"}, "p": "abcdefghijklm"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " leave is 25 days."}, "p": "abcdefghi"}),
    ("contentBlockStop", {"contentBlockIndex": 0, "p": "abcdefghijklmnopqrstuvwxyzABCDE"}),
    ("messageStop", {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGH", "stopReason": "end_turn"}),
    ("metadata", {"metrics": {"latencyMs": 2211}, "p": "abcdefghijklmnopqrstu",
                  "usage": {"cacheDetails": [{"inputTokens": 2816, "ttl": "1h"}, {"inputTokens": 254, "ttl": "5m"}],
                            "cacheReadInputTokens": 48213, "cacheWriteInputTokens": 3070, "inputTokens": 12,
                            "outputTokens": 318, "totalTokens": 51613}}),
]

# the model failed after two deltas: no usage
STREAM_ERROR = STREAM_PLAIN[:3]
STREAM_ERROR_EXCEPTION = ("modelStreamErrorException", {
    "message": "The model encountered an error processing the request.",
    "originalMessage": "Internal error", "originalStatusCode": 500,
})

# -- InvokeModel bodies, per model family ------------------------------------------------------

# Anthropic Messages: 25 in, 96 out
ANTHROPIC = {
    "id": "msg_bdrk_01Hq3yTgN3GgQ6nPzSSeDKsW",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-20241022",
    "content": [{"type": "text", "text": "The capital of France is Paris."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 25, "output_tokens": 96},
}
ANTHROPIC_HEADERS = invoke_headers(25, 96)

# Anthropic Messages: 12 uncached + 48,213 read + 3,070 written (254 for 5 minutes, 2,816 for an hour), 318 out
ANTHROPIC_CACHED = {
    "id": "msg_bdrk_01Y8tNp4bWm2VvQ7sZcK1xRe",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Per the handbook, annual leave is 25 days."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 3070,
        "cache_read_input_tokens": 48213,
        "cache_creation": {"ephemeral_5m_input_tokens": 254, "ephemeral_1h_input_tokens": 2816},
        "output_tokens": 318,
    },
}
ANTHROPIC_CACHED_HEADERS = invoke_headers(12, 318, cache_read=48213, cache_write=3070)

# Anthropic Messages: 611 in, 143 out; two tool calls
ANTHROPIC_TOOL_USE = {
    "id": "msg_bdrk_01A2b3C4d5E6f7G8h9J0kLmN",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-20241022",
    "content": [
        {"type": "text", "text": "I'll check both cities."},
        {"type": "tool_use", "id": "toolu_bdrk_01T1x8Vq2kPzGZ6sY9wR3mNc", "name": "get_weather",
         "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_bdrk_01QpLm7Nz4Xc2Vb8Hj5Kd3Fs", "name": "get_weather",
         "input": {"city": "Lyon"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 611, "output_tokens": 143},
}
ANTHROPIC_TOOL_USE_HEADERS = invoke_headers(611, 143)

# Amazon Nova: 180 uncached + 1,024 read from the cache, 163 out
NOVA_BODY = {
    "output": {"message": {"content": [{"text": "Bonjour !"}], "role": "assistant"}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 180, "outputTokens": 163, "totalTokens": 1367,
              "cacheReadInputTokenCount": 1024, "cacheWriteInputTokenCount": 0},
}
NOVA_HEADERS = invoke_headers(180, 163, cache_read=1024, cache_write=0)

# Meta Llama: 31 in, 54 out
LLAMA_BODY = {
    "generation": "\n\nThe capital of France is Paris.",
    "prompt_token_count": 31,
    "generation_token_count": 54,
    "stop_reason": "stop",
}
LLAMA_HEADERS = invoke_headers(31, 54)

# Amazon Titan Text: 9 in, 42 out
TITAN_BODY = {
    "inputTextTokenCount": 9,
    "results": [{"tokenCount": 42, "outputText": "\nParis is the capital of France.", "completionReason": "FINISH"}],
}
TITAN_HEADERS = invoke_headers(9, 42)

# Amazon Titan Embeddings: 7 in (no output)
TITAN_EMBED_BODY = {
    "embedding": [0.0123, -0.0456, 0.0789, 0.0011],
    "embeddingsByType": {"float": [0.0123, -0.0456, 0.0789, 0.0011]},
    "inputTextTokenCount": 7,
}
TITAN_EMBED_HEADERS = invoke_headers(7)

# Mistral text completion: no counts in the body; 22 in, 61 out from the headers
MISTRAL_BODY = {"outputs": [{"text": " Paris is the capital of France.", "stop_reason": "stop"}]}
MISTRAL_HEADERS = invoke_headers(22, 61)

# Mistral Large 2 chat completion: one tool call; 97 in, 23 out from the headers
MISTRAL_LARGE_BODY = {
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "", "tool_calls": [
            {"id": "Xk3pQ9mZa", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        "stop_reason": "tool_calls",
    }],
}
MISTRAL_LARGE_HEADERS = invoke_headers(97, 23)

# Cohere Command R+: 58 in, 19 out from the headers
COHERE_BODY = {
    "response_id": "2b1c6f0e-8d7a-4c3b-a5e2-9f0d1c2b3a4e",
    "text": "Paris is the capital of France.",
    "generation_id": "d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70",
    "chat_history": [
        {"role": "USER", "message": "What is the capital of France?"},
        {"role": "CHATBOT", "message": "Paris is the capital of France."},
    ],
    "finish_reason": "COMPLETE",
}
COHERE_HEADERS = invoke_headers(58, 19)

# OpenAI gpt-oss (chat completions): 80 in, 150 out
GPT_OSS_BODY = {
    "id": "chatcmpl-5d1b9a62c3e04f6b",
    "object": "chat.completion",
    "created": 1754429913,
    "model": "openai.gpt-oss-120b-1:0",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 80, "completion_tokens": 150, "total_tokens": 230},
}
GPT_OSS_HEADERS = invoke_headers(80, 150)

# -- InvokeModelWithResponseStream: chunk payloads ---------------------------------------------

# Anthropic: 25 in, 96 out
ANTHROPIC_STREAM = [
    {"type": "message_start", "message": {
        "id": "msg_bdrk_01Hq3yTgN3GgQ6nPzSSeDKsW", "type": "message", "role": "assistant",
        "model": "claude-3-5-sonnet-20241022", "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "The capital of France"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " is Paris."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
     "usage": {"output_tokens": 96}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 25, "outputTokenCount": 96, "invocationLatency": 2164, "firstByteLatency": 422}},
]

# Anthropic: 12 uncached + 48,213 read + 3,070 written (254 for 5 minutes, 2,816 for an hour), 143 out; one tool call
ANTHROPIC_STREAM_CACHED_TOOL = [
    {"type": "message_start", "message": {
        "id": "msg_bdrk_01Y8tNp4bWm2VvQ7sZcK1xRe", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 3070, "cache_read_input_tokens": 48213,
                  "cache_creation": {"ephemeral_5m_input_tokens": 254, "ephemeral_1h_input_tokens": 2816},
                  "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me restart"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_bdrk_01T1x8Vq2kPzGZ6sY9wR3mNc", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Pa"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ris\"}"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 143}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 12, "outputTokenCount": 143, "invocationLatency": 3120, "firstByteLatency": 880,
        "cacheReadInputTokenCount": 48213, "cacheWriteInputTokenCount": 3070}},
]

# Amazon Nova: 180 uncached + 1,024 read from the cache, 163 out
NOVA_STREAM = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"text": "Bon"}, "contentBlockIndex": 0}},
    {"contentBlockDelta": {"delta": {"text": "jour !"}, "contentBlockIndex": 0}},
    {"contentBlockStop": {"contentBlockIndex": 0}},
    {"messageStop": {"stopReason": "end_turn"}},
    {"metadata": {"usage": {"inputTokens": 180, "outputTokens": 163, "cacheReadInputTokenCount": 1024,
                            "cacheWriteInputTokenCount": 0}, "metrics": {}, "trace": {}},
     "amazon-bedrock-invocationMetrics": {"inputTokenCount": 180, "outputTokenCount": 163, "invocationLatency": 520,
                                          "firstByteLatency": 198, "cacheReadInputTokenCount": 1024,
                                          "cacheWriteInputTokenCount": 0}},
]

# Meta Llama: 31 in, 54 out
LLAMA_STREAM = [
    {"generation": "\n\nThe", "prompt_token_count": 31, "generation_token_count": 1, "stop_reason": None},
    {"generation": " capital of France", "prompt_token_count": None, "generation_token_count": 4, "stop_reason": None},
    {"generation": " is Paris.", "prompt_token_count": None, "generation_token_count": 54, "stop_reason": "stop",
     "amazon-bedrock-invocationMetrics": {"inputTokenCount": 31, "outputTokenCount": 54, "invocationLatency": 977,
                                          "firstByteLatency": 321}},
]

# Amazon Titan Text: 9 in, 42 out
TITAN_STREAM = [
    {"outputText": "\nParis is", "index": 0, "totalOutputTextTokenCount": 3, "completionReason": None,
     "inputTextTokenCount": 9},
    {"outputText": " the capital of France.", "index": 0, "totalOutputTextTokenCount": 42, "completionReason": "FINISH",
     "inputTextTokenCount": None,
     "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": 42, "invocationLatency": 1207,
                                          "firstByteLatency": 1187}},
]

# Mistral: 22 in, 61 out (only in the invocation metrics)
MISTRAL_STREAM = [
    {"outputs": [{"text": " Paris", "stop_reason": None}]},
    {"outputs": [{"text": " is the capital of France.", "stop_reason": "stop"}],
     "amazon-bedrock-invocationMetrics": {"inputTokenCount": 22, "outputTokenCount": 61, "invocationLatency": 640,
                                          "firstByteLatency": 233}},
]

# -- other services ----------------------------------------------------------------------------

S3_LIST_BUCKETS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>"
    b"<DisplayName>owner</DisplayName></Owner>"
    b"<Buckets><Bucket><Name>invoices</Name><CreationDate>2024-05-01T12:00:00.000Z</CreationDate></Bucket></Buckets>"
    b"</ListAllMyBucketsResult>"
)
