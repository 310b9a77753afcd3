"""Nothing lost: batches the ingest server cannot take go to a disk spool and are sent when it
answers again, also by the next process after a restart."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time

import httpx

from tollmeter import Meter, MeterConfig
from tollmeter.transport.spool import Spool

INGEST = "https://metering.example.com/v1/ingest"


def meter_for(spool_dir, **options) -> Meter:
    options.setdefault("flush_interval", 60)
    return Meter(MeterConfig(url=INGEST, api_key="k", retry_backoff=0.01, max_retries=1,
                             spool_dir=str(spool_dir), **options))


def sent_ids(route) -> list[str]:
    return [e["event_id"] for c in route.calls for e in json.loads(gzip.decompress(c.request.content))["events"]]


def track(meter, n):
    return [meter.track_manually(provider="openai", model="gpt-4o", input_tokens=i, tenant_id="acme").event_id
            for i in range(n)]


def test_undelivered_batches_are_spooled_then_sent_when_the_server_is_back(http_mock, tmp_path):
    route = http_mock.post(INGEST)
    route.side_effect = httpx.ConnectError("down")
    meter = meter_for(tmp_path)
    first = track(meter, 3)
    assert meter.flush(10)
    second = track(meter, 2)  # the server is known down: straight to the spool, no waiting
    assert meter.flush(10)
    assert meter.stats()["spooled"] == 5 and meter.stats()["failed"] == 0
    assert len(Spool(tmp_path, 10**9).pending()) == 2
    attempts = route.call_count
    assert attempts == 2  # the first batch tried twice (max_retries=1); the second not at all

    route.reset()
    route.side_effect = None
    route.respond(200, json={"accepted": 3})
    meter._delivery.sink.down_until = 0.0  # the next probe is due
    meter._pipeline.upkeep()
    assert sorted(sent_ids(route)) == sorted(first + second)
    assert meter.stats()["replayed"] == 5 and Spool(tmp_path, 10**9).pending() == []
    meter.shutdown()


def test_shutdown_with_the_server_down_spools_and_the_next_process_sends(http_mock, tmp_path):
    route = http_mock.post(INGEST)
    route.side_effect = httpx.ConnectError("down")
    meter = meter_for(tmp_path)
    ids = track(meter, 4)
    assert meter.shutdown(timeout=10)
    assert meter.stats()["spooled"] == 4

    route.reset()
    route.side_effect = None
    route.respond(200)
    after_restart = meter_for(tmp_path)  # a new process of the same app, same spool
    deadline = time.monotonic() + 10  # it sends them at start, in the background, recording nothing
    while after_restart.stats()["replayed"] < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(sent_ids(route)) == sorted(ids) and after_restart.stats()["replayed"] == 4
    after_restart.shutdown()


def test_a_full_spool_drops_the_oldest_batches_and_counts_them(tmp_path):
    spool = Spool(tmp_path, max_bytes=250)
    for _ in range(5):
        assert spool.put(os.urandom(100), events=3)
    assert spool.stats.dropped > 0 and spool.size() <= 250
    assert spool.stats.spooled == 15


def test_has_pending_sees_waiting_and_claimed_batches_only(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=10**9)
    assert not spool.has_pending()  # no directory yet
    spool.directory.mkdir()
    (spool.directory / ".tmp-write").write_bytes(b"")
    assert not spool.has_pending()
    spool.put(b"batch", events=1)
    assert spool.has_pending()
    assert spool.claim(spool.pending()[0]) is not None
    assert spool.has_pending()  # being sent (perhaps by a process that died doing it)


def test_two_processes_never_send_the_same_spooled_batch(tmp_path):
    spool = Spool(tmp_path, max_bytes=10**9)
    spool.put(b"batch", events=1)
    path = spool.pending()[0]
    assert spool.claim(path) is not None
    assert spool.claim(path) is None  # already claimed by someone else
    assert Spool(tmp_path, 10**9).pending() == []


def test_refused_batches_are_not_spooled(http_mock, tmp_path):
    http_mock.post(INGEST).respond(401, json={"detail": "invalid key"})
    meter = meter_for(tmp_path)
    track(meter, 2)
    assert meter.flush(10)
    assert meter.stats()["failed"] == 2 and meter.stats()["spooled"] == 0
    meter.shutdown()


def test_spool_survives_a_killed_process(tmp_path):
    """A real process records events while the server is down and exits: they are on disk."""
    script = (
        "from tollmeter import Meter, MeterConfig\n"
        f"m = Meter(MeterConfig(url='http://127.0.0.1:9/v1/ingest', api_key='k', max_retries=0, "
        f"spool_dir={str(tmp_path)!r}, flush_interval=60))\n"
        "for i in range(3): m.track_manually(provider='openai', model='gpt-4o', input_tokens=i)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    spool = Spool(tmp_path, 10**9)
    batches = [spool.claim(p) for p in spool.pending()]
    events = [e for b in batches for e in json.loads(gzip.decompress(b.body))["events"]]
    assert [e["usage"].get("input_tokens", 0) for e in events] == [0, 1, 2]
