"""Notifications (server side): rules fire once per threshold and period and resolve, signed
webhooks reach a real receiver on localhost, failures are retried with backoff from a persisted
outbox, replicas on one database send each message once; configured through the API and the
CLI. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from tollmeter.cli import main as cli_main
from tollmeter.notifications import log, sign, verify_signature
from tollmeter.notifications.refusals import record_refusal
from tollmeter.notifications.runner import Notifier
from tollmeter.notifications.settings import NotifierSettings
from tollmeter.server.auth import create_key
from tollmeter.server.state import open_store
from tollmeter.store import migrations, schema
from tollmeter.store.ledger import Ledger
from tollmeter.store.rows import event_row

from .server_support import Server, database_for, event, free_port, wait_ready, write_card, RATE_CARD

pytest_plugins = ["tests.server_harness"]

#: Quick retries for tests: 0.01 s, 0.02 s, 0.04 s... and no jitter, so the log's next retry
#: times can be checked exactly.
FAST = NotifierSettings(interval=0.05, leak_interval=0.01, backoff_base=0.01, backoff_jitter=0, max_attempts=4,
                        timeout=5, claim_seconds=30)
SECRET = "whsec_test_secret_0123456789"


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request, answers the scripted status codes
    (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.requests.append({"headers": dict(self.headers), "body": body, "status": status,
                                              "path": self.path})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def messages(self) -> list[dict]:
        """The JSON bodies answered 2xx."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if 200 <= r["status"] < 300]

    def wait(self, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.messages()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def store(backend):
    """A fresh, migrated server database (a project's store of it)."""
    url, drop = database_for(backend)
    base = open_store(url)
    migrations.upgrade(base.engine)
    yield base.for_project("proj")
    base.close()
    drop()


def spend(store, amount: str, tenant: str = "acme", at: datetime | None = None) -> None:
    at = at or datetime.now(timezone.utc)
    store.add_events([event_row(event(tenant_id=tenant, cost_usd=amount, priced=True, timestamp=at.isoformat()))])


def notifier(store, **changes) -> Notifier:
    settings = NotifierSettings(**{**FAST.__dict__, **changes})
    return Notifier(store.for_project("default"), settings)


def rounds(n: Notifier, until, limit: int = 400, now: datetime | None = None) -> None:
    """Run rounds (at `now`, default the clock's) until `until()` holds (a bounded number: a
    broken sender fails the test)."""
    for _ in range(limit):
        n.run_once(now=now)
        if until():
            return
        time.sleep(0.02)
    raise AssertionError("not reached")


# -- signatures -----------------------------------------------------------------------------------


def test_a_signature_verifies_and_a_tampered_body_or_an_old_timestamp_does_not():
    body = b'{"id":"ntf_1","text":"acme spent $8"}'
    now = int(time.time())
    header = sign(SECRET, body, timestamp=now)
    assert header.startswith(f"t={now},v1=")
    assert verify_signature(SECRET, header, body)
    assert not verify_signature(SECRET, header, body.replace(b"$8", b"$9"))  # tampered body
    assert not verify_signature("whsec_another_secret_000000", header, body)  # wrong secret
    old = sign(SECRET, body, timestamp=now - 301)
    assert not verify_signature(SECRET, old, body)  # replayed after the tolerance
    assert verify_signature(SECRET, old, body, tolerance=600)
    assert not verify_signature(SECRET, sign(SECRET, body, timestamp=now + 301), body)  # from the future
    # the timestamp is signed: moving it breaks the signature
    assert not verify_signature(SECRET, header.replace(f"t={now}", f"t={now + 1}"), body)
    for bad in (None, "", "v1=abc", f"t={now}", "t=soon,v1=abc", "garbage"):
        assert not verify_signature(SECRET, bad, body)
    # a rotated secret: either v1 entry may match
    rotated = f"{header},v1={sign('whsec_new_secret_1111111111', body, timestamp=now).split('v1=')[1]}"
    assert verify_signature(SECRET, rotated, body)
    assert verify_signature("whsec_new_secret_1111111111", rotated, body)


def test_settings_from_the_environment():
    settings = NotifierSettings.from_env({"TOLLMETER_NOTIFY_INTERVAL": "2.5", "TOLLMETER_NOTIFY_MAX_ATTEMPTS": "3",
                                          "TOLLMETER_NOTIFY": "off", "TOLLMETER_NOTIFY_BACKOFF_BASE": ""})
    assert (settings.interval, settings.max_attempts, settings.enabled, settings.backoff_base) == (2.5, 3, False, 30.0)
    pruning = NotifierSettings.from_env({"TOLLMETER_NOTIFY_KEEP_DAYS": "7", "TOLLMETER_NOTIFY_PRUNE_INTERVAL": "60",
                                         "TOLLMETER_NOTIFY_PRUNE_BATCH": "50"})
    assert (pruning.keep_days, pruning.prune_interval, pruning.prune_batch) == (7, 60.0, 50)
    assert [NotifierSettings(backoff_jitter=0).backoff(n) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    assert NotifierSettings(backoff_jitter=0).backoff(40) == 6 * 3600.0  # capped
    assert NotifierSettings(backoff_jitter=0.5).backoff(1, draw=0.5) == 37.5
    for bad in ({"TOLLMETER_NOTIFY_INTERVAL": "soon"}, {"TOLLMETER_NOTIFY_INTERVAL": "0"},
                {"TOLLMETER_NOTIFY_MAX_ATTEMPTS": "0"}, {"TOLLMETER_NOTIFY_TIMEOUT": "500"},
                {"TOLLMETER_NOTIFY_PRUNE_BATCH": "0"}, {"TOLLMETER_NOTIFY_PRUNE_INTERVAL": "-1"}):
        with pytest.raises(ValueError):
            NotifierSettings.from_env(bad)


# -- limit thresholds -----------------------------------------------------------------------------


def test_limit_thresholds_fire_once_per_period_and_resolve(store, receiver):
    store.set_limit("acme", "per_day", 1)
    endpoint = log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[50, 100])
    assert endpoint["secret"] == SECRET and endpoint["thresholds"] == [50, 100]
    n = notifier(store)
    try:
        spend(store, "0.3")
        assert n.run_once()[0] == 0  # 30 %: nothing
        spend(store, "0.3")
        rounds(n, lambda: len(receiver.messages()) == 1)
        for _ in range(3):
            n.run_once()  # still past 50 %: not again
        [first] = receiver.messages()
        assert (first["type"], first["status"], first["tenant_id"], first["project"]) == (
            "limit.threshold", "firing", "acme", "proj")
        assert first["subject"] == "per_day:50" and first["period"] == f"per_day:{datetime.now(timezone.utc):%Y-%m-%d}"
        assert first["data"]["spent_usd"] == "0.6" and first["data"]["limit_usd"] == "1"
        assert "acme spent $0.60 of its $1.00 daily limit (60.0%): past 50%" in first["text"]
        request = receiver.requests[0]
        assert verify_signature(SECRET, request["headers"]["Tollmeter-Signature"], request["body"])
        assert request["headers"]["Tollmeter-Event"] == "limit.threshold"
        assert request["headers"]["Tollmeter-Message-Id"] == first["id"]

        spend(store, "0.5")  # 110 %
        rounds(n, lambda: len(receiver.messages()) == 2)
        second = receiver.messages()[1]
        assert second["subject"] == "per_day:100" and second["status"] == "firing"

        store.set_limit("acme", "per_day", 10)  # raised: 11 %, under both thresholds
        rounds(n, lambda: len(receiver.messages()) == 4)
        resolved = receiver.messages()[2:]
        assert {m["subject"] for m in resolved} == {"per_day:50", "per_day:100"}
        assert {m["status"] for m in resolved} == {"resolved"}
        assert {m["data"]["reason"] for m in resolved} == {"below_threshold"}
        assert all(m["text"].startswith("Resolved: acme is below") for m in resolved)
        for _ in range(3):
            n.run_once()
        assert len(receiver.messages()) == 4  # resolved once
        assert len({m["id"] for m in receiver.messages()}) == 4
    finally:
        n.stop()


def test_a_new_period_resolves_and_fires_again(store, receiver):
    store.set_limit("acme", "per_hour", 1)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
    n = notifier(store)
    try:
        now = datetime.now(timezone.utc)
        spend(store, "1.5", at=now)
        rounds(n, lambda: len(receiver.messages()) == 1)
        # an hour on, spend of the new hour crosses again: the old period resolves, the new fires
        later = now + timedelta(hours=1)
        spend(store, "2", at=later)
        rounds(n, lambda: len(receiver.messages()) == 3, now=later)
        messages = receiver.messages()
        by_status = {(m["status"], m["period"]) for m in messages[1:]}
        assert by_status == {("resolved", f"per_hour:{now:%Y-%m-%dT%H}"), ("firing", f"per_hour:{later:%Y-%m-%dT%H}")}
        assert next(m for m in messages if m["status"] == "resolved")["data"]["reason"] == "period_ended"
    finally:
        n.stop()


def test_default_limits_cover_tenants_without_their_own(store, receiver):
    store.set_limit("*", "per_month", 1)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[80])
    n = notifier(store)
    try:
        spend(store, "0.9", tenant="initech")
        spend(store, "0.1", tenant="hooli")
        rounds(n, lambda: len(receiver.messages()) == 1)
        [message] = receiver.messages()
        assert message["tenant_id"] == "initech" and message["data"]["default_limit"] is True
    finally:
        n.stop()


# -- retries, outbox, log -------------------------------------------------------------------------


def test_failures_are_retried_with_backoff_until_delivered(store, receiver):
    store.set_limit("acme", "per_day", 1)
    endpoint = log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
    receiver.script = [500, 503]
    spend(store, "2")
    n = notifier(store)
    try:
        rounds(n, lambda: log.recent_deliveries(store)[0]["status"] == "delivered")
    finally:
        n.stop()
    [delivery] = log.recent_deliveries(store)
    assert (delivery["endpoint_id"], delivery["attempts"], delivery["last_status_code"]) == (
        endpoint["endpoint_id"], 3, 200)
    assert delivery["next_attempt_at"] is None and delivery["delivered_at"] is not None
    assert delivery["answers"] == ["500", "503", "200"]
    attempts = log.delivery_attempts(store, delivery["delivery_id"])
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert attempts[0]["error"].startswith("HTTP 500")
    # backoff: base x 2^(n-1) after failed attempt n (no jitter here), none after the success
    waits = [datetime.fromisoformat(a["next_attempt_at"]) - datetime.fromisoformat(a["attempted_at"])
             for a in attempts[:2]]
    assert waits == [timedelta(seconds=0.01), timedelta(seconds=0.02)]
    assert attempts[2]["next_attempt_at"] is None
    # every attempt carried the same message, each signed
    bodies = {r["body"] for r in receiver.requests}
    assert len(bodies) == 1 and len(receiver.requests) == 3
    assert all(verify_signature(SECRET, r["headers"]["Tollmeter-Signature"], r["body"]) for r in receiver.requests)


def test_a_delivery_is_given_up_after_max_attempts(store, receiver):
    store.set_limit("acme", "per_day", 1)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
    receiver.script = [500] * 10
    spend(store, "2")
    n = notifier(store, max_attempts=3)
    try:
        rounds(n, lambda: log.recent_deliveries(store)[0]["status"] == "failed")
    finally:
        n.stop()
    [delivery] = log.recent_deliveries(store)
    assert delivery["attempts"] == 3 and delivery["next_attempt_at"] is None
    assert delivery["answers"] == ["500"] * 3
    assert len(receiver.requests) == 3
    assert log.recent_deliveries(store, status="failed") == [delivery]
    assert log.recent_deliveries(store, status="delivered") == []


def test_an_answer_read_by_its_transport_is_logged(store):
    """A transport that reads the answer itself (httpx.MockTransport, or one of a proxy's) does
    not break the round: the error still carries the body's start."""
    import httpx

    store.set_limit("acme", "per_day", 1)
    log.save_endpoint(store, url="https://hooks.example.com/x", secret=SECRET, rules=["limit"], thresholds=[100])
    spend(store, "2")
    answers = [httpx.Response(500, text="not today"), httpx.Response(204)]
    n = Notifier(store.for_project("default"), FAST, transport=httpx.MockTransport(lambda request: answers.pop(0)))
    try:
        rounds(n, lambda: log.recent_deliveries(store)[0]["status"] == "delivered")
    finally:
        n.stop()
    [delivery] = log.recent_deliveries(store)
    assert delivery["answers"] == ["500", "204"]
    assert log.delivery_attempts(store, delivery["delivery_id"])[0]["error"] == "HTTP 500: not today"


def test_the_outbox_survives_a_restart(backend, receiver):
    """Deliveries queued while the receiver is down are sent by a new process later."""
    url, drop = database_for(backend)
    first = open_store(url)
    migrations.upgrade(first.engine)
    project = first.for_project("proj")
    down = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    endpoint = log.save_endpoint(project, url=down, secret=SECRET, rules=["limit"], thresholds=[100])
    project.set_limit("acme", "per_day", 1)
    spend(project, "2")
    n = Notifier(first, NotifierSettings(**{**FAST.__dict__, "backoff_base": 0.05}))
    n.run_once()
    n.stop()
    first.close()  # the process ends with the delivery pending
    [pending] = log.recent_deliveries(open_store(url).for_project("proj"))
    assert pending["status"] == "pending" and pending["attempts"] == 1 and "ConnectError" in pending["last_error"]
    assert pending["answers"] == ["ConnectError"]

    second = open_store(url)  # a new process; the receiver is back
    try:
        log.save_endpoint(second.for_project("proj"), endpoint_id=endpoint["endpoint_id"], url=receiver.url)
        restarted = Notifier(second, FAST)
        try:
            rounds(restarted, lambda: len(receiver.messages()) == 1)
        finally:
            restarted.stop()
        [message] = receiver.messages()
        assert message["id"] == log.recent_deliveries(second.for_project("proj"))[0]["message_id"]
        assert log.recent_deliveries(second.for_project("proj"))[0]["attempts"] == 2
    finally:
        second.close()
        drop()


def test_slack_body(store, receiver):
    store.set_limit("acme", "per_day", 1)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, format="slack", rules=["limit"], thresholds=[100])
    spend(store, "1.2")
    n = notifier(store)
    try:
        rounds(n, lambda: len(receiver.messages()) == 1)
    finally:
        n.stop()
    [body] = receiver.messages()
    assert list(body) == ["text"]
    assert body["text"].startswith(":rotating_light: [tollmeter proj] acme spent $1.20 of its $1.00 daily limit")
    request = receiver.requests[0]
    assert verify_signature(SECRET, request["headers"]["Tollmeter-Signature"], request["body"])


def test_disabled_or_removed_endpoints_get_nothing(store, receiver):
    store.set_limit("acme", "per_day", 1)
    kept = log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
    other = Receiver()
    try:
        off = log.save_endpoint(store, url=other.url, rules=["limit"], thresholds=[100], enabled=False)
        leak_only = log.save_endpoint(store, url=other.url, rules=["leak"])
        spend(store, "2")
        n = notifier(store)
        try:
            rounds(n, lambda: len(receiver.messages()) == 1)
            n.run_once()
        finally:
            n.stop()
        assert other.requests == []
        assert {d["endpoint_id"] for d in log.recent_deliveries(store)} == {kept["endpoint_id"]}
        assert {e["endpoint_id"] for e in log.list_endpoints(store)} == {kept["endpoint_id"], off["endpoint_id"],
                                                                          leak_only["endpoint_id"]}
    finally:
        other.close()


def test_a_test_message_and_the_log_kept_for_keep_days(store, receiver):
    endpoint = log.save_endpoint(store, url=receiver.url, secret=SECRET)
    assert log.send_test(store, "nosuch") is None
    message = log.send_test(store, endpoint["endpoint_id"])
    n = notifier(store, keep_days=30)
    try:
        rounds(n, lambda: len(receiver.messages()) == 1)
        [got] = receiver.messages()
        assert (got["id"], got["type"], got["tenant_id"]) == (message["id"], "notification.test", None)
        request = receiver.requests[0]
        assert verify_signature(SECRET, request["headers"]["Tollmeter-Signature"], request["body"])
        [delivery] = log.recent_deliveries(store)
        n.run_once(now=datetime.now(timezone.utc) + timedelta(days=29))
        assert log.recent_deliveries(store) == [delivery]
        n.run_once(now=datetime.now(timezone.utc) + timedelta(days=31))  # delivered 30 days ago: forgotten
        assert log.recent_deliveries(store) == []
        assert log.delivery_attempts(store, delivery["delivery_id"]) == []
    finally:
        n.stop()


# -- refusal bursts and leaks ---------------------------------------------------------------------


def test_a_refusal_burst_fires_once_and_resolves(store, receiver):
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["refusals"], refusal_count=3,
                      refusal_window_minutes=5)
    now = datetime.now(timezone.utc)
    for _ in range(2):
        record_refusal(store, "acme", at=now)
    n = notifier(store)
    try:
        assert n.run_once(now=now)[0] == 0  # 2 < 3
        record_refusal(store, "acme", at=now)
        record_refusal(store, "acme", at=now + timedelta(minutes=1))
        n.run_once(now=now + timedelta(minutes=1))
        n.run_once(now=now + timedelta(minutes=2))  # the burst goes on: one notification
        rounds(n, lambda: len(receiver.messages()) == 1, now=now + timedelta(minutes=2))
        [burst] = receiver.messages()
        assert (burst["type"], burst["status"], burst["tenant_id"]) == ("refusals.burst", "firing", "acme")
        assert burst["data"] == {"refusals": 4, "count": 3, "window_minutes": 5}
        n.run_once(now=now + timedelta(minutes=30))  # the window holds none now
        # rounds at that time too: at the clock's, the four refusals are in the window again,
        # and in another hour than `now`'s (a run across an hour's end) they fire anew
        rounds(n, lambda: len(receiver.messages()) == 2, now=now + timedelta(minutes=30))
        resolved = receiver.messages()[1]
        assert (resolved["status"], resolved["subject"], resolved["period"]) == ("resolved", "3/5m", burst["period"])
    finally:
        n.stop()


def test_refused_leases_are_counted_by_the_server(api):
    """POST /v1/leases refused (the limit spent) counts in lease_refusals."""
    assert api.http.put("/v1/limits/acme", json={"frequency": "per_day", "limit_usd": "0.001"}).status_code == 200
    assert api.ingest([event()]).json()["accepted"] == 1  # 0.0028: past the limit
    for _ in range(3):
        answer = api.http.post("/v1/leases", json={"tenant_id": "acme", "holder": "h1", "want_usd": "0.01",
                                                   "need_usd": "0.001", "ttl_seconds": 30}).json()
        assert answer["refused"] is True
    t = schema.lease_refusals
    with api.server.store.transaction() as conn:
        counted = conn.execute(select(t.c.refusals).where(t.c.project_id == api.project, t.c.tenant_id == "acme")
                               ).scalars().all()
    assert sum(counted) == 3


def test_a_leak_flag_fires_and_resolves_when_it_clears(store, receiver):
    ledger = Ledger(store)
    month = date.today().replace(day=1)
    ledger.upsert_customer("hooli", plan={"name": "flat", "pricing_model": "flat", "base_revenue_usd": "0.01"},
                           effective_from=month)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["leak"])
    spend(store, "5", tenant="hooli")
    n = notifier(store)
    try:
        rounds(n, lambda: any(m["data"].get("rule") == "cost_over_revenue" for m in receiver.messages()))
        flagged = [m for m in receiver.messages() if m["status"] == "firing"]
        assert {m["type"] for m in flagged} == {"leak.flagged"}
        assert {m["tenant_id"] for m in flagged} == {"hooli"}
        assert all(m["period"] == f"{month:%Y-%m}" for m in flagged)
        count = len(receiver.messages())
        n.run_once()
        assert len(receiver.messages()) == count  # once per month
        ledger.upsert_customer("hooli", plan={"name": "big", "pricing_model": "flat", "base_revenue_usd": "100000"},
                               effective_from=month)
        rounds(n, lambda: len(receiver.messages()) >= 2 * count and all(
            any(r["subject"] == f["subject"] and r["status"] == "resolved" for r in receiver.messages())
            for f in flagged))
        resolved = [m for m in receiver.messages() if m["status"] == "resolved"]
        assert {m["subject"] for m in resolved} == {m["subject"] for m in flagged}
        assert {m["data"]["reason"] for m in resolved} == {"no_longer_flagged"}
    finally:
        n.stop()


def test_a_removed_limit_and_the_months_end_resolve(store, receiver):
    """The other two ways a notification clears: its limit removed, its month over (a leak)."""
    ledger = Ledger(store)
    month = date.today().replace(day=1)
    ledger.upsert_customer("hooli", plan={"name": "flat", "pricing_model": "flat", "base_revenue_usd": "0.01"},
                           effective_from=month)
    store.set_limit("acme", "per_month", 1)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit", "leak"], thresholds=[100])
    spend(store, "2", tenant="acme")
    spend(store, "5", tenant="hooli")
    n = notifier(store)

    def of(rule_type: str, status: str) -> list[dict]:
        return [m for m in receiver.messages() if m["type"] == rule_type and m["status"] == status]

    try:
        rounds(n, lambda: of("limit.threshold", "firing") and of("leak.flagged", "firing"))
        store.remove_limit("acme", "per_month")
        rounds(n, lambda: of("limit.threshold", "resolved"))
        [removed] = of("limit.threshold", "resolved")
        assert removed["data"]["reason"] == "limit_removed"
        assert removed["text"] == "Resolved: acme has no monthly limit any more"
        flagged = of("leak.flagged", "firing")
        next_month = (month + timedelta(days=32)).replace(day=1)
        later = datetime(next_month.year, next_month.month, 1, 1, tzinfo=timezone.utc)
        rounds(n, lambda: len(of("leak.flagged", "resolved")) >= len(flagged), now=later)
        ended = [m for m in of("leak.flagged", "resolved") if m["period"] == f"{month:%Y-%m}"]
        assert sorted(m["subject"] for m in ended) == sorted(m["subject"] for m in flagged)
        assert {m["data"]["reason"] for m in ended} == {"month_ended"}
        assert all(m["text"].startswith(f"Resolved: the month {month:%Y-%m} ended") for m in ended)
    finally:
        n.stop()


def test_a_customers_flagged_runs_are_one_notification(store, receiver):
    """A per-resolution plan's failed runs all earn nothing, so each is flagged: one message
    for them together (naming the costliest), not one per run; new runs flagged later in the
    month add none; resolved once none is flagged."""
    ledger = Ledger(store)
    month = date.today().replace(day=1)
    ledger.upsert_customer("globex", plan={"name": "outcomes", "pricing_model": "per_resolution",
                                           "unit_revenue_usd": "1000"}, effective_from=month)
    log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["leak"])
    now = datetime.now(timezone.utc)

    def failed_run(run: str, cost: str) -> None:
        store.add_events([event_row(event(tenant_id="globex", run_id=run, cost_usd=cost, priced=True,
                                           timestamp=now.isoformat()))])
        ledger.resolve(run, "failed", tenant_id="globex", at=now)

    for i, cost in enumerate(("0.02", "0.05", "0.01")):
        failed_run(f"run-{i}", cost)
    n = notifier(store)
    try:
        def runs() -> list[dict]:
            return [m for m in receiver.messages() if m["subject"].endswith(":runs")]

        rounds(n, lambda: len(runs()) == 1)
        [flagged] = runs()
        assert (flagged["type"], flagged["tenant_id"], flagged["subject"]) == (
            "leak.flagged", "globex", "run_over_unit_revenue:runs")
        assert flagged["data"]["numbers"] == {"runs": 3, "cost_usd": "0.08", "revenue_usd": "0"}
        assert flagged["data"]["run_ids"] == ["run-1", "run-0", "run-2"]  # the costliest first
        assert flagged["text"].startswith("Leak (run_over_unit_revenue): 3 runs of globex this month cost more "
                                          "than they earn: $0.08 against $0.00; the costliest: run run-1")
        # the customer's own flag (cost over revenue) is its own message: two in all
        assert sorted(m["data"]["rule"] for m in receiver.messages()) == ["cost_over_revenue", "run_over_unit_revenue"]
        failed_run("run-3", "0.04")
        for _ in range(3):
            n.run_once()
        assert len(receiver.messages()) == 2  # once a month
        ledger.upsert_customer("globex", plan={"name": "flat", "pricing_model": "flat", "base_revenue_usd": "100000"},
                               effective_from=month)
        rounds(n, lambda: len(runs()) == 2)
        resolved = runs()[1]
        assert (resolved["status"], resolved["subject"], resolved["data"]["reason"]) == (
            "resolved", "run_over_unit_revenue:runs", "no_longer_flagged")
        assert resolved["text"] == "Resolved: no run of globex is flagged run_over_unit_revenue any more"
    finally:
        n.stop()


# -- replicas -------------------------------------------------------------------------------------


def test_replicas_on_one_database_send_each_message_once(backend, receiver):
    """Two notifiers (each its own engine: two processes' worth) evaluate and send at the same
    time, round after round, while spend crosses thresholds: every message arrives once."""
    url, drop = database_for(backend)
    stores = [open_store(url) for _ in range(2)]
    migrations.upgrade(stores[0].engine)
    project = stores[0].for_project("proj")
    project.set_limit("acme", "per_day", 1)
    project.set_limit("initech", "per_day", 1)
    log.save_endpoint(project, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[25, 50, 75, 100])
    other = Receiver()
    log.save_endpoint(project, url=other.url, secret=SECRET, rules=["limit"], thresholds=[50])
    notifiers = [Notifier(s, FAST) for s in stores]
    start, stop, errors = threading.Barrier(3), threading.Event(), []

    def replica(n: Notifier) -> None:
        try:
            start.wait()
            while not stop.is_set():
                n.run_once()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(n,)) for n in notifiers]
    try:
        for t in threads:
            t.start()
        start.wait()
        for _ in range(5):  # 0.22 a step, 1.10 in all: every threshold of both tenants
            spend(project, "0.22", tenant="acme")
            spend(project, "0.22", tenant="initech")
            time.sleep(0.05)
        receiver.wait(8)
        other.wait(2)
        time.sleep(0.5)  # more rounds, to give a second send its chance
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        for n in notifiers:
            n.stop()
    try:
        assert errors == []
        got = receiver.messages()
        assert sorted((m["tenant_id"], m["subject"], m["status"]) for m in got) == sorted(
            (tenant, f"per_day:{pct}", "firing") for tenant in ("acme", "initech") for pct in (25, 50, 75, 100))
        assert len(receiver.requests) == 8  # nothing sent twice
        assert sorted(m["tenant_id"] for m in other.messages()) == ["acme", "initech"]
        assert len(other.requests) == 2
        assert {m["id"] for m in other.messages()} <= {m["id"] for m in got}  # one message, two endpoints
    finally:
        other.close()
        for s in stores:
            s.close()
        drop()


def launch(url: str, env: dict, logs) -> Server:
    """`tollmeter serve` on `url` with `env` added (the shared test servers drop TOLLMETER_*)."""
    port = free_port()
    log_path = logs / f"server-{port}.log"
    args = [sys.executable, "-m", "tollmeter.server", "serve", "--database-url", url, "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--prices", write_card(f"prices-{port}.json", RATE_CARD)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOLLMETER_")}
    with open(log_path, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**clean, **env})
    return Server("custom", url, f"http://127.0.0.1:{port}", process, log_path)


def test_two_servers_on_one_database_notify_once(backend, receiver, tmp_path):
    """End to end: two `tollmeter serve` processes on one database, notifiers running in their
    lifespans; the endpoint set through the API, spend ingested over HTTP."""
    url, drop = database_for(backend)
    env = {"TOLLMETER_NOTIFY_INTERVAL": "0.1", "TOLLMETER_NOTIFY_BACKOFF_BASE": "0.05"}
    servers = []
    try:
        first = wait_ready(launch(url, env, tmp_path))  # migrates
        servers.append(first)
        servers.append(wait_ready(launch(url, env, tmp_path)))
        key = create_key(first.store, "proj")[1]
        clients = [s.client(key) for s in servers]
        answer = clients[0].post("/v1/notifications/endpoints", json={
            "url": receiver.url, "rules": ["limit"], "thresholds": [50, 100]})
        assert answer.status_code == 201, answer.text
        secret = answer.json()["secret"]
        assert clients[1].put("/v1/limits/acme", json={"frequency": "per_day", "limit_usd": "0.005"}).status_code == 200
        for c in clients:  # 0.0028 each: 56 %, then 112 %
            body = json.dumps({"events": [event()]})
            assert c.post("/v1/ingest", content=body, headers={"Content-Type": "application/json"}).status_code == 200
        got = receiver.wait(2)
        time.sleep(1)  # rounds of both servers: no second copy
        assert sorted(m["subject"] for m in receiver.messages()) == ["per_day:100", "per_day:50"]
        assert len(receiver.requests) == 2
        assert all(verify_signature(secret, r["headers"]["Tollmeter-Signature"], r["body"]) for r in receiver.requests)
        log_rows = clients[1].get("/v1/notifications/deliveries").json()["deliveries"]
        assert {(d["status"], d["attempts"], tuple(d["answers"])) for d in log_rows} == {("delivered", 1, ("200",))}
        assert {d["message_id"] for d in log_rows} == {m["id"] for m in got}
        for c in clients:
            c.close()
    finally:
        for s in servers:
            s.cleanup = []
            s.stop()
        drop()


# -- API and CLI ----------------------------------------------------------------------------------


def test_endpoints_through_the_api(api):
    created = api.http.post("/v1/notifications/endpoints", json={
        "url": "https://hooks.example.com/a", "format": "slack", "rules": ["limit", "leak"],
        "thresholds": [90, 75, 90], "description": "ops"})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["secret_hint"] == "..." + endpoint["secret"][-4:]
    assert (endpoint["format"], endpoint["rules"], endpoint["thresholds"], endpoint["enabled"]) == (
        "slack", ["limit", "leak"], [75, 90], True)
    eid = endpoint["endpoint_id"]
    listed = api.http.get("/v1/notifications/endpoints").json()["endpoints"]
    assert [e["endpoint_id"] for e in listed] == [eid] and listed[0].get("secret") is None
    changed = api.http.patch(f"/v1/notifications/endpoints/{eid}", json={"enabled": False, "thresholds": [100]})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert changed.json()["thresholds"] == [100] and changed.json()["rules"] == ["limit", "leak"]
    assert changed.json().get("secret") is None
    rotated = api.http.patch(f"/v1/notifications/endpoints/{eid}", json={"secret": "a-new-secret-of-some-length"})
    assert rotated.json()["secret"] == "a-new-secret-of-some-length"
    # bad input: a clear 422, nothing changed
    for bad in ({"url": "ftp://x"}, {"url": "not a url"}, {"url": "https://x", "rules": ["nope"]},
                {"url": "https://x", "thresholds": [0]}, {"url": "https://x", "secret": "short"},
                {"url": "https://x", "format": "xml"}, {"url": "https://x\u0000"}, {"url": "https://x", "extra": 1}):
        assert api.http.post("/v1/notifications/endpoints", json=bad).status_code == 422, bad
    assert api.http.patch(f"/v1/notifications/endpoints/{eid}", json={"url": None}).status_code == 422
    assert len(api.http.get("/v1/notifications/endpoints").json()["endpoints"]) == 1
    # another project sees none of it
    other = api.server.project()
    try:
        assert other.http.get("/v1/notifications/endpoints").json() == {"endpoints": []}
        assert other.http.get(f"/v1/notifications/endpoints/{eid}").status_code == 404
        assert other.http.delete(f"/v1/notifications/endpoints/{eid}").status_code == 404
        assert other.http.get("/v1/notifications/deliveries").json() == {"deliveries": []}
    finally:
        other.http.close()
    assert api.http.get("/v1/notifications/deliveries", params={"limit": 0}).status_code == 422
    queued = api.http.post(f"/v1/notifications/endpoints/{eid}/test")
    assert queued.status_code == 202 and queued.json()["queued"] is True
    [delivery] = api.http.get("/v1/notifications/deliveries").json()["deliveries"]
    assert (delivery["message_id"], delivery["event"]) == (queued.json()["message_id"], "notification.test")
    assert api.http.post("/v1/notifications/endpoints/nosuch/test").status_code == 404
    assert api.http.delete(f"/v1/notifications/endpoints/{eid}").status_code == 204
    assert api.http.get(f"/v1/notifications/endpoints/{eid}").status_code == 404
    assert api.http.get("/v1/notifications/endpoints", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_the_cli_configures_a_server(api, receiver, capsys, monkeypatch):
    monkeypatch.delenv("TOLLMETER_API_KEY", raising=False)
    base = ["--server", api.server.base + "/v1/ingest", "--api-key", api.key]

    def run(*argv):
        code = cli_main(["notifications", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("add", receiver.url, "--rules", "limit", "--thresholds", "50,100%", "--body", "slack", *base)
    assert code == 0 and "secret (shown once" in out
    [eid] = [line.split()[2] for line in out.splitlines() if line.startswith("added endpoint")]
    code, out, _ = run("list", *base)
    assert code == 0 and eid in out and "50%,100%" in out and "slack" in out
    code, out, _ = run("update", eid, "--disable", "--refusal-count", "4", *base)
    assert code == 0
    code, out, _ = run("list", "--format", "json", *base)
    [endpoint] = json.loads(out)
    assert endpoint["enabled"] is False and endpoint["refusal_count"] == 4
    code, _, err = run("add", "ftp://nowhere", *base)
    assert code == 2 and "422" in err and "url" in err
    code, _, err = run("update", "nosuch", "--enable", *base)
    assert code == 2 and "404" in err
    code, out, _ = run("deliveries", *base)
    assert code == 0 and "no deliveries yet" in out
    code, out, _ = run("test", eid, *base)
    assert code == 0 and "queued test message ntf_" in out
    code, out, _ = run("deliveries", "--format", "json", *base)
    assert [d["event"] for d in json.loads(out)] == ["notification.test"]
    code, out, _ = run("remove", eid, *base)
    assert code == 0 and f"removed endpoint {eid}" in out
    code, _, err = run("list", "--server", api.server.base)
    assert code == 2 and "no API key" in err


def test_the_cli_shows_the_delivery_log(store, receiver, capsys, tmp_path):
    """`deliveries` and `attempts` against a server on this test's database."""
    url = str(store.engine.url.render_as_string(hide_password=False))
    server = wait_ready(launch(url, {"TOLLMETER_NOTIFY": "0"}, tmp_path))
    try:
        key = create_key(server.store, "proj")[1]
        store.set_limit("acme", "per_day", 1)
        log.save_endpoint(store, url=receiver.url, secret=SECRET, rules=["limit"], thresholds=[100])
        receiver.script = [502]
        spend(store, "2")
        n = notifier(store)
        try:
            rounds(n, lambda: len(receiver.messages()) == 1)
        finally:
            n.stop()
        assert cli_main(["notifications", "deliveries", "--server", server.base, "--api-key", key]) == 0
        out = capsys.readouterr().out
        [delivery] = log.recent_deliveries(store)
        assert delivery["delivery_id"] in out and "delivered" in out and "limit.threshold" in out
        assert cli_main(["notifications", "attempts", delivery["delivery_id"], "--server", server.base,
                         "--api-key", key]) == 0
        out = capsys.readouterr().out
        assert "502" in out and "200" in out
    finally:
        server.stop()
