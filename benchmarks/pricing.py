"""What pricing costs: on the background worker per event, and on the caller's thread per call.

    .venv/bin/python benchmarks/pricing.py [--events 20000] [--calls 2000]

Pricing runs on the background worker; the caller's thread is only affected through the
worker's share of the interpreter. The first table compares tollmeter's compiled rate sheets
with genai-prices' own `calc_price` on the same usage; the second alternates metered calls with
pricing on and off in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

import genai_prices

from overhead import make_client, timed
from tollmeter import LLMEvent, Meter, MeterConfig, Usage
from tollmeter.pricing.pricer import Pricer

CASES = [
    ("openai", "gpt-4o-2024-08-06", Usage(input_tokens=2006, cache_read_tokens=1920, output_tokens=300)),
    ("anthropic", "claude-sonnet-4-6", Usage(input_tokens=51_295, cache_read_tokens=48_213, cache_write_tokens=3_070,
                                             cache_write_1h_tokens=2_816, output_tokens=318)),
    ("google", "gemini-2.5-pro", Usage(input_tokens=250_000, output_tokens=1_000)),
]


def per_event_us(fn, n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / 1000 / n


def worker_side(n: int) -> None:
    pricer = Pricer()
    now = datetime.now(timezone.utc)
    print(f"{'model':<28}{'tollmeter µs/event':>20}{'genai calc_price µs':>22}")
    for provider, model, usage in CASES:
        event = LLMEvent(provider=provider, model=model, usage=usage, timestamp=now)
        pricer.price(event)  # warm the caches
        ours = per_event_us(lambda: pricer.price(event), n)
        raw = genai_prices.Usage(**{k: v for k, v in usage.to_dict().items() if k != "reasoning_tokens"})
        theirs = per_event_us(lambda: genai_prices.calc_price(raw, model, provider_id=provider,
                                                              genai_request_timestamp=now), max(1, n // 10))
        print(f"{model:<28}{ours:>20.1f}{theirs:>22.1f}")


def caller_side(calls: int) -> None:
    client = make_client(10)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    meter = Meter(MeterConfig(max_queue_size=1_000_000, flush_interval=0.05))
    meter.patch_all()

    def plain():
        client.chat.completions.create(model="gpt-4o", messages=messages)

    for _ in range(100):
        plain()
    on, off = [], []
    for i in range(calls * 2):
        meter.config.pricing = bool(i % 2)
        (on if i % 2 else off).append(timed(plain))
    meter.config.pricing = True
    meter.shutdown()
    a, b = statistics.median(off), statistics.median(on)
    print(f"\nmetered call, median µs: pricing off {a:.1f}, pricing on {b:.1f}, difference {b - a:+.1f} "
          f"(ratio {b / a:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=2_000)
    args = parser.parse_args()
    print(f"genai-prices {genai_prices.__version__}\n")
    worker_side(args.events)
    caller_side(args.calls)


if __name__ == "__main__":
    main()
