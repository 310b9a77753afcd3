"""Shared fixtures: a meter that records into a list, and a respx router at the HTTP transport.

The current openai, anthropic and google-genai releases are built on httpx2, older ones on httpx;
`http_mock` routes both through one respx router (httpx2 through pytest-httpx2's httpcore2 mocker).
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from contextlib import contextmanager

import pytest
import respx
from respx.mocks import Mocker

import pydantic

from tollmeter import LLMEvent, Meter, MeterConfig

# Meters made by tests keep their embedded store in memory, and anything else they would
# write (spools) in a throwaway data directory, never in the user's.
os.environ["TOLLMETER_DB"] = ":memory:"
# LiteLLM (installed for its tests) would fetch its price map from the network when imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="tollmeter-tests-")


class Recorder:
    """A patched Meter whose events land in a list."""

    def __init__(self, **options) -> None:
        self.events: list[LLMEvent] = []
        self.errors: list[BaseException] = []
        options.setdefault("flush_interval", 0.05)
        self.meter = Meter(MeterConfig(on_event=self.events.append, on_error=self.errors.append, **options))

    def recorded(self) -> list[LLMEvent]:
        assert self.meter.flush(timeout=10), "events were not handled in time"
        return self.events

    def one(self) -> LLMEvent:
        events = self.recorded()
        assert len(events) == 1, f"expected exactly one event, got {len(events)}: {events}"
        return events[0]


def collect() -> None:
    """A full garbage collection that ran on this thread after this call began: what a test that
    drops a stream calls before it reads the events, in place of a bare `gc.collect()`.

    A stream dropped before its end is collected only by the cyclic collector (the SDK's own
    chunk generator holds the stream: a reference cycle, unpatched too), and its call is recorded
    as it is collected. A bare `gc.collect()` does not make sure of that: while another thread's
    collection runs (the meter's worker, a test server's handler thread, any thread whose
    allocations set one off), CPython's `gc.collect()` returns 0 at once and collects nothing,
    and that other collection lets this thread run whenever it releases the GIL (a finalizer
    closing a socket, or running Python code). The stream then outlives the test's flush and
    the test sees no event. Run here after that collection ended, a full collection has either
    found the stream itself or comes after the one that did; the stream's finalizers (which
    submit its call) run within whichever collection found it, before it ends.
    """
    me = threading.get_ident()
    ran: list[bool] = []

    def collected(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2 and threading.get_ident() == me:
            ran.append(True)

    gc.callbacks.append(collected)
    try:
        deadline = time.monotonic() + 60  # a bound for "never", not a timing claim
        while True:
            gc.collect()
            if ran:
                return
            assert time.monotonic() < deadline, "another thread's garbage collection never ended"
            time.sleep(0.001)  # another thread is collecting: let it finish
    finally:
        gc.callbacks.remove(collected)


@pytest.fixture
def recorder():
    rec = Recorder()
    rec.meter.patch_all()
    yield rec
    rec.meter.shutdown()
    assert not rec.errors, f"instrumentation faults: {rec.errors!r}"


@contextmanager
def mock_http():
    """One respx router mocking httpx and httpx2 transports; unmatched requests fail."""
    import pytest_httpx2  # noqa: F401 - registers respx's httpcore2 mocker outside pytest too

    with respx.mock(using="httpcore", assert_all_called=False) as router:
        second = Mocker.registry.get("httpcore2")
        if second is not None:
            second.register(router)
            second.start()
        try:
            yield router
        finally:
            if second is not None:
                second.unregister(router)
                second.stop()


@pytest.fixture
def http_mock():
    with mock_http() as router:
        yield router


def observe(value):
    """What a caller can see of an SDK result, in comparable form (fields set included)."""
    if isinstance(value, pydantic.BaseModel):
        return (value.__class__.__qualname__, value.model_dump(mode="json", warnings=False),
                value.model_dump(mode="json", exclude_unset=True, warnings=False))
    if isinstance(value, (list, tuple)):
        return [observe(v) for v in value]
    if value.__class__.__name__ == "HttpxBinaryResponseContent":  # openai's binary audio
        return value.__class__.__qualname__, value.content, dict(value.response.headers)
    return value


def run_bare_then_patched(scenario, provider: str | None = None):
    """Run `scenario` on the bare SDK, then patched (one provider, or all): (bare, patched, events)."""
    bare = scenario()
    events: list[LLMEvent] = []
    meter = Meter(MeterConfig(on_event=events.append, flush_interval=0.05))
    meter.patch(provider) if provider else meter.patch_all()
    try:
        patched = scenario()
        assert meter.flush(5)
    finally:
        meter.shutdown()
    return bare, patched, events
