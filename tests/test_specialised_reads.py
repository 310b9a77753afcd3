"""The reads on every metered call's path are ones CPython specialises (docs/benchmarks.md,
"Reads the interpreter specialises"): after warm calls, each named attribute load in the
functions of the call path is a specialised instruction, not the generic one. A real openai
client over respx, a tenant with no limit and one with a limit."""

from __future__ import annotations

import dis
import platform
import sys

import openai
import pytest

from tollmeter import Meter, MeterConfig
from tollmeter.call_hooks import MeterHooks
from tollmeter.instrument.stainless import StainlessEndpoint

from .bodies import openai_bodies as B

pytestmark = pytest.mark.skipif(
    platform.python_implementation() != "CPython" or sys.version_info < (3, 11),
    reason="the specialising interpreter is CPython's, from 3.11")

CHAT = "https://api.openai.com/v1/chat/completions"

#: (function, the attribute names whose loads must be specialised in it)
READS = [
    (MeterHooks.admit, {"admit_plain"}),
    (MeterHooks.finished, {"_queue"}),
    (StainlessEndpoint.start, {"_url_provider", "_client"}),
]


def _loads(code, names):
    return [(i.opname, i.argval) for i in dis.get_instructions(code, adaptive=True)
            if i.opname.startswith(("LOAD_ATTR", "LOAD_METHOD")) and i.argval in names]


def test_the_call_paths_reads_are_specialised(http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN)
    meter = Meter(MeterConfig(store=":memory:", max_queue_size=100_000))
    meter.set_limit("limited", 1_000_000, frequency="per_month")
    meter.patch("openai")
    try:
        client = openai.OpenAI(api_key="k", max_retries=0)
        for tenant in ("free", "limited"):
            with meter.for_tenant(tenant):
                for _ in range(200):
                    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        wrapper = type(client.chat.completions).create._self_wrapper
        generic = {"LOAD_ATTR", "LOAD_ATTR_ADAPTIVE", "LOAD_METHOD", "LOAD_METHOD_ADAPTIVE"}
        for function, names in READS:
            loads = _loads(function.__code__, names)
            assert {name for _, name in loads} == names, (function, loads)
            assert not [load for load in loads if load[0] in generic], (function.__qualname__, loads)
        # the wrapper's own: the in-call mark is a set, not a thread-local attribute
        assert "on" not in {i.argval for i in dis.get_instructions(wrapper.__code__)}
    finally:
        meter.shutdown()
