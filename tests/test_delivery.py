"""Delivery: gzip batches to the ingest URL, retries, permanent failures, flush, shutdown, fork."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time

import httpx
import pytest

from tollmeter import DeliveryError, Meter, MeterConfig

INGEST = "https://metering.example.com/v1/ingest"


def make_meter(**options) -> Meter:
    options.setdefault("url", INGEST)
    options.setdefault("api_key", "tm_test_key")
    options.setdefault("flush_interval", 60)  # only size, flush() and shutdown() send
    options.setdefault("retry_backoff", 0.01)
    options.setdefault("spool_dir", False)  # the spool has tests of its own
    return Meter(MeterConfig(**options))


def posted_events(route) -> list[dict]:
    events = []
    for call in route.calls:
        events.extend(json.loads(gzip.decompress(call.request.content))["events"])
    return events


def track(meter: Meter, n: int, tenant: str = "acme") -> list[str]:
    return [
        meter.track_manually(provider="openai", model="gpt-4o", input_tokens=10 + i, output_tokens=i,
                             tenant_id=tenant).event_id
        for i in range(n)
    ]


def test_batch_is_gzip_json_with_bearer_key(http_mock):
    route = http_mock.post(INGEST).respond(200, json={"accepted": 3})
    meter = make_meter()
    ids = track(meter, 3)
    assert meter.flush(5)
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer tm_test_key"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    events = posted_events(route)
    assert [e["event_id"] for e in events] == ids
    assert events[0]["usage"] == {"input_tokens": 10, "output_tokens": 0}
    assert events[0]["tenant_id"] == "acme" and events[0]["schema_version"] == 1
    assert meter.stats()["sent"] == 3
    meter.shutdown()


def test_full_batch_is_sent_without_waiting_for_the_interval(http_mock):
    route = http_mock.post(INGEST).respond(200)
    meter = make_meter(max_batch_size=4)
    track(meter, 8)
    deadline = time.monotonic() + 5
    while len(posted_events(route)) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(json.loads(gzip.decompress(c.request.content))["events"]) for c in route.calls] == [4, 4]
    meter.shutdown()


def test_interval_sends_a_partial_batch(http_mock):
    route = http_mock.post(INGEST).respond(200)
    meter = make_meter(flush_interval=0.05)
    track(meter, 2)
    deadline = time.monotonic() + 5
    while not route.called and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(posted_events(route)) == 2
    meter.shutdown()


def test_retries_429_and_5xx_then_delivers_once(http_mock):
    route = http_mock.post(INGEST)
    route.side_effect = [
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "0.05"}),
        httpx.Response(502),
        httpx.Response(200, json={"accepted": 2}),
    ]
    meter = make_meter()
    ids = track(meter, 2)
    assert meter.flush(10)
    assert route.call_count == 4
    # every attempt carried the same events: the server deduplicates on event_id
    assert all([e["event_id"] for e in json.loads(gzip.decompress(c.request.content))["events"]] == ids
               for c in route.calls)
    stats = meter.stats()
    assert (stats["sent"], stats["retried"], stats["failed"]) == (2, 3, 0)
    meter.shutdown()


def test_retry_after_is_honoured(http_mock):
    route = http_mock.post(INGEST)
    times = []

    def respond(request):
        times.append(time.monotonic())
        return httpx.Response(429, headers={"Retry-After": "0.3"}) if len(times) == 1 else httpx.Response(200)

    route.side_effect = respond
    meter = make_meter()
    track(meter, 1)
    assert meter.flush(10)
    assert times[1] - times[0] >= 0.29
    meter.shutdown()


def test_network_errors_are_retried(http_mock):
    route = http_mock.post(INGEST)
    route.side_effect = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(200)]
    meter = make_meter()
    track(meter, 1)
    assert meter.flush(10)
    assert route.call_count == 3 and meter.stats()["sent"] == 1
    meter.shutdown()


def test_permanent_4xx_is_reported_counted_and_not_retried(http_mock):
    route = http_mock.post(INGEST).respond(401, json={"detail": "invalid api key"})
    errors = []
    meter = make_meter(on_error=errors.append)
    track(meter, 3)
    assert meter.flush(10)
    assert route.call_count == 1
    stats = meter.stats()
    assert (stats["sent"], stats["failed"], stats["retried"]) == (0, 3, 0)
    assert len(errors) == 1 and isinstance(errors[0], DeliveryError)
    assert errors[0].status_code == 401 and "invalid api key" in str(errors[0])
    meter.shutdown()


def test_gives_up_after_max_retries_without_a_spool(http_mock):
    route = http_mock.post(INGEST).respond(500)
    errors = []
    meter = make_meter(max_retries=2, on_error=errors.append)
    track(meter, 2)
    assert meter.flush(10)
    assert route.call_count == 3
    assert meter.stats()["failed"] == 2 and isinstance(errors[0], DeliveryError)
    meter.shutdown()


def test_rejected_events_in_an_accepted_batch_are_reported(http_mock):
    http_mock.post(INGEST).respond(200, json={"accepted": 2, "rejected": [{"index": 1, "reason": "bad tenant_id"}]})
    errors = []
    meter = make_meter(on_error=errors.append)
    track(meter, 3)
    assert meter.flush(10)
    stats = meter.stats()
    assert (stats["sent"], stats["rejected"]) == (2, 1)
    assert "bad tenant_id" in str(errors[0])
    meter.shutdown()


def test_shutdown_delivers_what_is_queued(http_mock):
    route = http_mock.post(INGEST).respond(200)
    meter = make_meter()
    ids = track(meter, 5)
    assert meter.shutdown(timeout=5)
    assert [e["event_id"] for e in posted_events(route)] == ids
    assert meter.stats()["queued"] == 0


def test_no_url_means_no_network(http_mock):
    # http_mock has no routes: any request would fail the test
    events = []
    meter = Meter(MeterConfig(on_event=events.append, flush_interval=0.01))
    track(meter, 3)
    assert meter.flush(5)
    assert len(events) == 3 and not http_mock.calls
    meter.shutdown()


def test_queue_is_bounded_and_drops_are_counted():
    release = threading.Event()
    seen = []

    def slow(event):
        release.wait(5)
        seen.append(event)

    meter = Meter(MeterConfig(on_event=slow, max_queue_size=5, max_batch_size=1, flush_interval=0.01))
    track(meter, 1)
    time.sleep(0.1)  # the worker now holds the first event, blocked in on_event
    track(meter, 10)
    stats = meter.stats()
    assert stats["dropped"] == 5 and stats["queued"] == 5
    release.set()
    assert meter.flush(5)
    assert len(seen) == 6
    meter.shutdown()


def test_on_event_exception_is_reported_not_raised():
    errors = []

    def broken(event):
        raise RuntimeError("user callback bug")

    meter = Meter(MeterConfig(on_event=broken, on_error=errors.append, flush_interval=0.01))
    track(meter, 2)
    assert meter.flush(5)
    assert len(errors) == 2 and str(errors[0]) == "user callback bug"
    assert meter.stats()["faults"] == 2
    meter.shutdown()


def test_flush_from_inside_on_event_does_not_deadlock():
    results = []
    meter = Meter(MeterConfig(flush_interval=0.01, on_event=lambda e: results.append(meter.flush(1))))
    track(meter, 1)
    assert meter.flush(5)
    assert results == [False]
    meter.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_child_has_its_own_worker_and_never_resends_parent_events(http_mock):
    route = http_mock.post(INGEST).respond(200)
    meter = make_meter()
    parent_ids = track(meter, 3, tenant="parent")  # queued, not yet sent (interval is 60 s)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read_fd)
            child_ids = track(meter, 2, tenant="child")
            ok = meter.flush(5)
            sent = [e["event_id"] for e in posted_events(route)]
            report = {"ok": ok, "sent": sent, "child_ids": child_ids, "stats": meter.stats(),
                      "thread": meter._pipeline.worker._thread.ident != threading.main_thread().ident}
            os.write(write_fd, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        report = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert report["ok"] and report["sent"] == report["child_ids"]  # only the child's own events
    assert report["stats"]["sent"] == 2 and report["thread"]
    assert meter.flush(5)
    assert [e["event_id"] for e in posted_events(route)] == parent_ids
    meter.shutdown()


def test_atexit_delivers_what_a_process_left_queued(tmp_path):
    """A real process that records events and exits without flushing: the atexit hook sends them."""
    import subprocess
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Ingest(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Authorization"], json.loads(gzip.decompress(body))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = tmp_path / "app.py"
    script.write_text(
        "from tollmeter import Meter, MeterConfig\n"
        f"meter = Meter(MeterConfig(url='http://127.0.0.1:{server.server_port}/v1/ingest', api_key='k', flush_interval=60))\n"
        "for i in range(3):\n"
        "    meter.track_manually(provider='openai', model='gpt-4o', input_tokens=i, tenant_id='acme')\n"
        "print('exiting without flush')\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    server.shutdown()
    assert result.returncode == 0, result.stderr
    assert len(received) == 1
    auth, payload = received[0]
    assert auth == "Bearer k" and [e["usage"].get("input_tokens") for e in payload["events"]] == [0, 1, 2]


# -- a worker thread that cannot start -----------------------------------------------------------


def _refuse_worker_threads(monkeypatch):
    real_start = threading.Thread.start

    def start(self):
        if self.name == "tollmeter-worker":
            raise RuntimeError("can't start new thread")
        return real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return real_start


def test_a_worker_that_cannot_start_is_a_counted_fault_never_an_exception(monkeypatch):
    errors, events = [], []
    meter = Meter(MeterConfig(store=False, on_error=errors.append, on_event=events.append, flush_interval=0.05))
    real_start = _refuse_worker_threads(monkeypatch)
    try:
        event = meter.track_manually(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=2)
        assert meter.flush(1) is False  # nothing could run it yet; no exception either
        assert meter.stats()["faults"] >= 1 and meter.stats()["queued"] == 1
        assert any("can't start new thread" in str(e) for e in errors)
        monkeypatch.setattr(threading.Thread, "start", real_start)
        assert meter.flush(5)  # a later flush starts it: the queued event was kept
        assert events == [event]
    finally:
        meter.shutdown()


def test_shutdown_without_a_worker_handles_the_queue_itself(monkeypatch):
    events = []
    meter = Meter(MeterConfig(store=False, on_error=lambda e: None, on_event=events.append))
    _refuse_worker_threads(monkeypatch)
    recorded = [meter.track_manually(provider="openai", model="gpt-4o", input_tokens=i, output_tokens=1)
                for i in range(3)]
    assert meter.shutdown(timeout=5)
    assert events == recorded and meter.stats()["dropped"] == 0
