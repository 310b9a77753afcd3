"""The agent's limits against a server (RemoteBudgets): leases over HTTP, settlement by the
server through each event's lease_id, and the unreachable-server policies.

The server side here is the real Store behind a respx route speaking the server's lease API;
tests/test_server_*.py drive the real server process."""

from __future__ import annotations

import gzip
import json
import time
from decimal import Decimal

import httpx
import openai
import pytest

from tollmeter import LimitExceededException, Meter, MeterConfig
from tollmeter.store.rows import event_row
from tollmeter.store.store import Store

from .bodies import openai_bodies as O

# Not marked `sdk`: the SDK is only the vehicle here (its subject is the limits client), run once.


SERVER = "https://metering.example.com"
CHAT = "https://api.openai.com/v1/chat/completions"
PLAIN_COST = (19 * Decimal("2.50") + 10 * Decimal(10)) / 1_000_000


def _state(s):
    return {"frequency": s.limit.frequency, "limit_usd": str(s.limit.limit_usd), "spent_usd": str(s.spent_usd),
            "leased_usd": str(s.leased_usd), "resets_at": s.resets_at.isoformat() if s.resets_at else None,
            "default": s.limit.default}


class FakeServer:
    """The server's lease, limits and ingest API over a real in-memory Store."""

    def __init__(self, router):
        self.store = Store(":memory:")
        self.up = True
        router.post(f"{SERVER}/v1/leases").mock(side_effect=self.lease)
        router.delete(url__regex=rf"{SERVER}/v1/leases/.*").mock(side_effect=self.release)
        router.put(url__regex=rf"{SERVER}/v1/limits/.*").mock(side_effect=self.set_limit)
        router.get(url__regex=rf"{SERVER}/v1/tenants/.*/spend").mock(side_effect=self.spend)
        router.post(f"{SERVER}/v1/ingest").mock(side_effect=self.ingest)

    def _check(self):
        if not self.up:
            raise httpx.ConnectError("connection refused")

    def lease(self, request):
        self._check()
        b = json.loads(request.content)
        g = self.store.grant(b["tenant_id"], b["holder"], Decimal(b["want_usd"]), need=Decimal(b["need_usd"]),
                             ttl=b["ttl_seconds"], lease_id=b.get("lease_id"))
        return httpx.Response(200, json={
            "lease_id": g.lease_id, "granted_usd": str(g.granted_usd), "remaining_usd": str(g.remaining_usd),
            "expires_at": g.expires_at.isoformat() if g.expires_at else None, "unlimited": g.unlimited,
            "limits": [_state(s) for s in g.states], "rate_limit": None})

    def release(self, request):
        self._check()
        self.store.release(request.url.path.rsplit("/", 1)[-1])
        return httpx.Response(204)

    def set_limit(self, request):
        b = json.loads(request.content)
        self.store.set_limit(request.url.path.rsplit("/", 1)[-1], b["frequency"], Decimal(b["limit_usd"]))
        return httpx.Response(200, json={})

    def spend(self, request):
        tenant = request.url.path.split("/")[-2]
        return httpx.Response(200, json={"tenant_id": tenant, "limits": [_state(s) for s in self.store.limit_states(tenant)]})

    def ingest(self, request):
        self._check()
        events = json.loads(gzip.decompress(request.content))["events"]
        settlements = {}
        for e in events:
            if e.get("lease_id") and e.get("cost_usd"):
                settlements[e["lease_id"]] = settlements.get(e["lease_id"], Decimal(0)) + Decimal(e["cost_usd"])
        self.store.add_events([event_row(e) for e in events], settlements)
        return httpx.Response(200, json={"accepted": len(events), "rejected": []})


@pytest.fixture
def server(http_mock):
    http_mock.post(CHAT).respond(json=O.CHAT_PLAIN)
    return FakeServer(http_mock)


def meter_for(**options):
    options.setdefault("max_retries", 0)
    meter = Meter(MeterConfig(url=f"{SERVER}/v1/ingest", api_key="tm_k", flush_interval=0.05, spool_dir=False,
                              retry_backoff=0.01, **options))
    meter.patch("openai")
    return meter


def ask():
    return openai.OpenAI(api_key="k", max_retries=0).chat.completions.create(
        model="gpt-4o", max_tokens=1, messages=[{"role": "user", "content": "hi"}])


def test_limits_set_through_the_meter_live_on_the_server(server):
    meter = meter_for()
    meter.set_limit("acme", Decimal("5"), frequency="per_day")
    assert [(lim.frequency, lim.limit_usd) for lim in server.store.limits_for("acme")] == [("per_day", Decimal("5"))]
    meter.shutdown()


def test_budget_leased_to_other_instances_is_not_spent_here_and_the_server_settles(server):
    server.store.set_limit("acme", "per_day", PLAIN_COST * 6)
    other = server.store.grant("acme", "other-instance:1", PLAIN_COST * 2, need=PLAIN_COST * 2, ttl=60)  # held elsewhere
    assert other.granted_usd == PLAIN_COST * 2
    meter = meter_for()
    sent = 0
    with meter.for_tenant("acme"):
        with pytest.raises(LimitExceededException):
            for _ in range(10):
                ask()
                sent += 1
                meter.flush(5)
    meter.flush(5)
    meter.shutdown()
    spent = server.store.spent("acme")["per_day"]
    assert spent == sent * PLAIN_COST and spent + other.remaining_usd <= PLAIN_COST * 6
    assert server.store.count_events() == sent and sent >= 3


def test_unreachable_server_fails_open_on_the_last_known_state(server):
    server.store.set_limit("acme", "per_day", PLAIN_COST * 4)
    # Leases lapse fast: calls ask the server again. limits_wait: the first call must get its
    # answer (the known state) even on a busy machine; the wait's bound is test_waits.py's.
    meter = meter_for(lease_ttl=0.05, limits_wait=10)
    try:
        with meter.for_tenant("acme"):
            ask()  # known state: plenty left
            server.up = False
            time.sleep(0.06)
            ask()  # unreachable: allowed on what was known
            with pytest.raises(LimitExceededException):
                for _ in range(10):  # this process's own spend eats what was known
                    time.sleep(0.06)
                    ask()
    finally:
        meter.shutdown()


def test_unreachable_server_fails_closed_when_configured(server):
    server.store.set_limit("acme", "per_day", Decimal("10"))
    server.up = False
    meter = meter_for(limits_unreachable="closed")
    with meter.for_tenant("acme"), pytest.raises(LimitExceededException, match="cannot be reached"):
        ask()
    meter.shutdown()


def test_tenant_unknown_and_server_down_is_let_through_by_default(server):
    server.up = False
    meter = meter_for()
    with meter.for_tenant("acme"):
        ask()
    meter.shutdown()
