"""Patching: class level, idempotent, exact restore, one event per call, faults never reach the app."""

from __future__ import annotations

import anthropic
import openai
import pytest
import wrapt
from openai.resources.chat.completions.completions import AsyncCompletions, Completions
from openai.resources.responses.responses import Responses

from tollmeter import Meter, MeterConfig
from tollmeter.instrument import openai as openai_adapter
from tollmeter.instrument import registry
from tollmeter.instrument.registry import UnknownProviderError

from .bodies import openai_bodies as B
from .conftest import Recorder

pytestmark = pytest.mark.sdk

CHAT = "https://api.openai.com/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


def is_patched(cls, name) -> bool:
    return isinstance(vars(cls)[name], wrapt.FunctionWrapper)


def originals():
    return {
        (cls, name): vars(cls)[name]
        for cls in (Completions, AsyncCompletions, Responses,
                    anthropic.resources.messages.messages.Messages)
        for name in ("create", "parse")
    }


def test_unpatch_restores_the_exact_original_attributes():
    before = originals()
    meter = Meter(MeterConfig())
    meter.patch_all()
    assert all(vars(cls)[name] is not fn for (cls, name), fn in before.items())
    meter.unpatch_all()
    assert all(vars(cls)[name] is fn for (cls, name), fn in before.items())
    meter.shutdown()


def test_patch_all_is_idempotent_and_reports_what_it_patched():
    from tollmeter.instrument.registry import PROVIDERS, _installed_module

    installed = [name for name, (sdk, module) in PROVIDERS.items() if _installed_module(sdk) and _installed_module(module)]
    assert {"openai", "anthropic"} <= set(installed)
    meter = Meter(MeterConfig())
    try:
        assert meter.patch_all() == installed
        wrapped = vars(Completions)["create"]
        assert meter.patch_all() == installed
        assert vars(Completions)["create"] is wrapped  # not wrapped twice
        meter.unpatch("openai")
        meter.unpatch("openai")
        assert meter.patched == sorted(set(installed) - {"openai"})
    finally:
        meter.shutdown()
    assert meter.patched == []


def test_providers_setting_limits_patch_all():
    meter = Meter(MeterConfig(providers=["anthropic"]))
    try:
        assert meter.patch_all() == ["anthropic"]
        assert not is_patched(Completions, "create")
    finally:
        meter.shutdown()


def test_provider_whose_sdk_is_missing_is_skipped_quietly(monkeypatch, caplog):
    monkeypatch.setitem(registry.PROVIDERS, "nosuch", ("nosuch_sdk_xyz", "tollmeter.instrument.nosuch"))
    meter = Meter(MeterConfig(providers=["nosuch", "openai"]))
    with caplog.at_level("WARNING", logger="tollmeter"):
        assert meter.patch_all() == ["openai"]
    assert not caplog.records
    meter.shutdown()


def test_patch_all_imports_no_sdk_and_patches_each_when_the_application_imports_it():
    """Importing every installed SDK took patch_all() seconds and grew the application's heap
    (its full garbage collections) several times over: an SDK is patched when the application
    imports it, before, after, or on another thread, and unpatched as it was."""
    import subprocess
    import sys

    code = """
import os, sys, threading
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
from tollmeter import Meter, MeterConfig
from tollmeter.instrument.registry import PROVIDERS
import wrapt
sdks = {name: sdk for name, (sdk, _) in PROVIDERS.items()}
import anthropic  # imported before: patched at once
meter = Meter(MeterConfig(store=False))
names = meter.patch_all()
assert {"openai", "anthropic", "google", "bedrock", "groq", "mistral", "cohere", "litellm"} <= set(names), names
assert meter.patched == sorted(names)
imported = [sdk for name, sdk in sdks.items() if sdk in sys.modules and name != "anthropic"]
assert not imported, imported
assert isinstance(anthropic.resources.messages.Messages.__dict__["create"], wrapt.FunctionWrapper)
import openai
from openai.resources.chat.completions.completions import Completions
assert isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper), "openai not patched on import"
t = threading.Thread(target=lambda: __import__("boto3"))
t.start(); t.join()
import botocore.client
assert isinstance(botocore.client.BaseClient.__dict__["_make_api_call"], wrapt.FunctionWrapper)
from google import genai
import google.genai.models
assert isinstance(google.genai.models.Models.__dict__["_generate_content"], wrapt.FunctionWrapper)
meter.unpatch_all()
assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)
assert not isinstance(botocore.client.BaseClient.__dict__["_make_api_call"], wrapt.FunctionWrapper)
import groq  # unpatched before its import: stays as it is
assert not isinstance(groq.resources.chat.completions.Completions.__dict__["create"], wrapt.FunctionWrapper)
assert meter.patched == []
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_unknown_provider_name_is_a_clear_error():
    meter = Meter(MeterConfig())
    with pytest.raises(UnknownProviderError, match="openai"):
        meter.patch("opnai")
    meter.shutdown()


def test_client_created_before_patching_is_covered(http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN)
    early = openai.OpenAI(api_key="k", max_retries=0)
    early.chat.completions  # resources created and cached before patching
    rec = Recorder()
    rec.meter.patch_all()
    try:
        early.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert rec.one().usage.input_tokens == 19
    finally:
        rec.meter.shutdown()


def test_two_meters_never_stack(http_mock, caplog):
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN)
    first, second = Recorder(), Recorder()
    first.meter.patch("openai")
    with caplog.at_level("WARNING", logger="tollmeter"):
        second.meter.patch("openai")
    assert "already instrumented by another Meter" in caplog.text
    openai.OpenAI(api_key="k").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(first.recorded()) == 1 and second.recorded() == []
    first.meter.shutdown()
    second.meter.shutdown()
    assert not is_patched(Completions, "create")


def test_meter_as_context_manager_unpatches_and_flushes(http_mock):
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN)
    events = []
    with Meter(MeterConfig(on_event=events.append, flush_interval=60)) as meter:
        meter.patch_all()
        openai.OpenAI(api_key="k").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(events) == 1  # flushed on exit although the interval is a minute
    assert not is_patched(Completions, "create")


def test_a_call_made_inside_an_instrumented_call_is_not_counted_twice(recorder, http_mock):
    """A wrapper (or the SDK itself) calling another instrumented method: one call, one event."""
    inner = openai.OpenAI(api_key="k", max_retries=0)

    def respond(request):
        # runs inside the outer create(): an instrumented call nested in it
        inner.embeddings.create(model="text-embedding-3-small", input="x")
        return __import__("httpx").Response(200, json=B.CHAT_PLAIN)

    http_mock.post("https://api.openai.com/v1/embeddings").respond(json=B.EMBEDDINGS)
    http_mock.post(CHAT).mock(side_effect=respond)
    openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [e.endpoint for e in recorder.recorded()] == ["chat.completions"]


def test_a_fault_in_the_adapter_never_reaches_the_app(http_mock, monkeypatch):
    def broken(self, call, response):
        raise ZeroDivisionError("adapter bug")

    monkeypatch.setattr(openai_adapter.ChatCompletions, "read_response", broken)
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN)
    rec = Recorder()
    rec.meter.patch("openai")
    try:
        completion = openai.OpenAI(api_key="k").chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert completion.id == B.CHAT_PLAIN["id"]
        event = rec.one()  # still recorded, with what is known
        assert event.endpoint == "chat.completions" and event.request_model == "gpt-4o"
        assert [type(e) for e in rec.errors] == [ZeroDivisionError]
        assert rec.meter.stats()["faults"] == 1
    finally:
        rec.meter.shutdown()


def test_a_fault_reading_the_request_lets_the_call_through(http_mock, monkeypatch):
    def broken(self, call, instance, args, kwargs):
        raise RuntimeError("request reader bug")

    monkeypatch.setattr(openai_adapter.ChatCompletions, "start", broken)
    http_mock.post(CHAT).respond(json=B.CHAT_PLAIN)
    rec = Recorder()
    rec.meter.patch("openai")
    try:
        completion = openai.OpenAI(api_key="k").chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert completion.id == B.CHAT_PLAIN["id"]
        assert rec.recorded() == [] and [type(e) for e in rec.errors] == [RuntimeError]
    finally:
        rec.meter.shutdown()


def test_a_fault_in_a_stream_reader_keeps_the_stream_flowing(http_mock, monkeypatch):
    def broken(self, call):
        def read(chunk):
            raise ValueError("chunk reader bug")
        return read

    monkeypatch.setattr(openai_adapter.ChatCompletions, "stream_reader", broken)
    http_mock.post(CHAT).respond(text=B.CHAT_STREAM_NO_USAGE, headers=B.SSE_HEADERS)
    rec = Recorder(stream_usage=False)
    rec.meter.patch("openai")
    try:
        chunks = list(openai.OpenAI(api_key="k").chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        assert len(chunks) == 9
        assert rec.one().stream and len(rec.errors) == 1  # reported once, then the reader steps aside
    finally:
        rec.meter.shutdown()
