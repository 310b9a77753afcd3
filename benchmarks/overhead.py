"""Per-call overhead of tollmeter on the caller's thread, against the bare SDK in the same run.

The SDK talks to an in-process mock transport (no sockets), so what is measured is the SDK's own
work plus ours. Blocks of bare and patched calls alternate; the medians of per-call times are
compared. Streams: the added time is divided by the number of chunks.

    .venv/bin/python benchmarks/overhead.py [--calls 2000] [--chunks 100]
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


def make_client(stream_chunks: int) -> openai.OpenAI:
    with_usage, without_usage = sse(stream_chunks, True), sse(stream_chunks, False)
    chat = json.dumps(CHAT).encode()

    def handler(request):
        body = json.loads(request.content)
        if body.get("stream"):
            wanted = (body.get("stream_options") or {}).get("include_usage")
            return httpx_mod.Response(200, content=with_usage if wanted else without_usage,
                                      headers={"content-type": "text/event-stream"})
        return httpx_mod.Response(200, content=chat, headers={"content-type": "application/json"})

    http_client = httpx_mod.Client(transport=httpx_mod.MockTransport(handler))
    return openai.OpenAI(api_key="bench", base_url="https://api.openai.com/v1", http_client=http_client, max_retries=0)


def per_call_us(fn, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def measure(fn, meter: Meter, calls: int, blocks: int) -> tuple[float, float]:
    bare, patched = [], []
    per_block = max(1, calls // blocks)
    for _ in range(per_block):  # warm up both paths
        fn()
    for _ in range(blocks):
        meter.unpatch_all()
        bare += per_call_us(fn, per_block)
        meter.patch_all()
        patched += per_call_us(fn, per_block)
        meter.flush(10)
    meter.unpatch_all()
    return statistics.median(bare), statistics.median(patched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--blocks", type=int, default=10)
    args = parser.parse_args()

    client = make_client(args.chunks)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    meter = Meter(MeterConfig(max_queue_size=1_000_000))

    def plain():
        client.chat.completions.create(model="gpt-4o", messages=messages)

    def streamed():
        for _ in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
            pass

    print(f"openai {openai.__version__}, {args.calls} calls per case, streams of {args.chunks} chunks")
    print(f"{'case':<14}{'bare µs':>12}{'patched µs':>12}{'added µs':>12}{'ratio':>8}")
    bare, patched = measure(plain, meter, args.calls, args.blocks)
    print(f"{'non-streamed':<14}{bare:>12.1f}{patched:>12.1f}{patched - bare:>12.1f}{patched / bare:>8.3f}")
    bare_s, patched_s = measure(streamed, meter, max(100, args.calls // 10), args.blocks)
    print(f"{'streamed':<14}{bare_s:>12.1f}{patched_s:>12.1f}{patched_s - bare_s:>12.1f}{patched_s / bare_s:>8.3f}")
    print(f"added per streamed chunk: {(patched_s - bare_s) / (args.chunks + 1):.2f} µs "
          f"(includes the call's fixed cost spread over {args.chunks + 1} chunks)")
    print(f"events recorded: {meter.stats()['recorded']}, dropped: {meter.stats()['dropped']}")
    meter.shutdown()


if __name__ == "__main__":
    main()
