"""`tollmeter reprice`: stored events still unpriced are priced once a rate card knows their
model, and their cost goes to the spend once, even when two runs race. And the agent itself
(Meter with an ingest url) delivering to the real server."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select

from tollmeter.server.commands import main
from tollmeter.server.pricing import load_pricer, reprice
from tollmeter.server.state import open_store
from tollmeter.store import migrations, schema
from tollmeter.store.rows import event_row

from .server_support import LATER_RATE_CARD, event, write_card

#: The fixtures (backend, server, api): a real server per database, and a project on it.
pytest_plugins = ["tests.server_harness"]

LATER_COST = Decimal("0.0014")  # 1,000 x $1 + 100 x $4, per million


def later(**fields):
    return event(model="tm-later-model", request_model="tm-later-model", **fields)


def test_reprice_prices_what_a_new_rate_card_knows(api, capsys):
    old = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()
    body = api.ingest([later(), later(tenant_id="globex"), later(timestamp=old), event(),
                       event(model="tm-unknown", request_model=None)]).json()
    assert body["unpriced"] == 4
    assert api.spend("acme")["spent"]["total"] == "0.0028"
    card = write_card("later.json", LATER_RATE_CARD)

    assert main(["reprice", "--db", api.server.url, "--prices", card, "--project", api.project, "--since", "1d"]) == 0
    out = capsys.readouterr().out
    assert "priced 2 of 3 unpriced events; $0.0028 added to the spend" in out
    assert "tm-unknown" in out and "still unpriced" in out

    rows = {r["tenant_id"]: r for r in api.usage(group_by="tenant_id")}
    assert rows["globex"]["cost_usd"] == "0.0014" and rows["globex"]["unpriced"] == 0
    assert rows["acme"]["unpriced"] == 2  # the old event (not since 1d) and the unknown model
    spend = api.spend("acme")["spent"]
    assert spend["total"] == "0.0042" and spend["per_day"] == "0.0042"

    assert main(["reprice", "--db", api.server.url, "--prices", card, "--project", api.project]) == 0
    assert "priced 1 of 2 unpriced events; $0.0014 added" in capsys.readouterr().out  # the old one
    assert api.spend("acme")["spent"]["total"] == "0.0056"
    assert api.spend("acme")["spent"]["per_day"] == "0.0042"  # three days ago: another day

    e = schema.events
    with api.server.store.transaction() as conn:
        sources = {r[0] for r in conn.execute(select(e.c.price_source).where(
            e.c.project_id == api.project, e.c.model == "tm-later-model"))}
    assert sources == {"rate card later.json models[1]"}


def test_two_reprices_at_once_count_each_event_once(api):
    assert api.ingest([later() for _ in range(40)]).json()["unpriced"] == 40
    pricer = load_pricer(write_card("later.json", LATER_RATE_CARD))
    results = []

    def run():
        results.append(reprice(api.server.store, pricer, project=api.project, batch=7))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r.priced for r in results) == 40
    assert Decimal(api.spend("acme")["spent"]["total"]) == LATER_COST * 40


def test_reprice_every_project(tmp_path, capsys):
    db = str(tmp_path / "all.db")
    store = open_store(db)
    try:
        migrations.upgrade(store.engine)
        for project in ("one", "two"):
            store.for_project(project).add_events([event_row(later()), event_row(later(tenant_id=None))])
    finally:
        store.close()
    card = write_card("later.json", LATER_RATE_CARD)
    assert main(["reprice", "--db", db, "--prices", card]) == 0
    assert "priced 4 of 4 unpriced events; $0.0056 added to the spend" in capsys.readouterr().out
    store = open_store(db)
    try:
        for project in ("one", "two"):
            view = store.for_project(project)
            assert view.spent("acme")["total"] == LATER_COST  # the tenant-less event has no spend row
            assert view.usage(group_by=[])[0]["unpriced"] == 0
    finally:
        store.close()
    assert main(["reprice", "--db", db, "--prices", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read rate card" in capsys.readouterr().err


def test_the_agent_delivers_to_the_server(api):
    """A Meter with the server's ingest URL: its events arrive, priced, once."""
    from tollmeter import Meter, MeterConfig

    meter = Meter(MeterConfig(url=api.server.base + "/v1/ingest", api_key=api.key, flush_interval=0.05,
                              prices=LATER_RATE_CARD))
    try:
        for tenant in ("acme", "acme", "globex"):
            meter.track_manually(provider="acme-ai", model="tm-later-model", input_tokens=1000, output_tokens=100,
                                 tenant_id=tenant)
        assert meter.flush(timeout=20)
    finally:
        meter.shutdown()
    rows = {r["tenant_id"]: r for r in api.usage(group_by="tenant_id")}
    assert rows["acme"]["calls"] == 2 and rows["acme"]["cost_usd"] == "0.0028" and rows["acme"]["unpriced"] == 0
    assert rows["globex"]["cost_usd"] == "0.0014"


def test_reprice_infers_gateway_models_unless_told_not_to(tmp_path, capsys, monkeypatch):
    """An event stored unpriced from a company proxy (`self-hosted`) naming gpt-4o: `reprice
    --no-infer` (or TOLLMETER_INFER_PRICES=0) leaves it unpriced; plain `reprice` prices it as
    gpt-4o, inferred from the model id."""
    db = str(tmp_path / "proxy.db")
    store = open_store(db)
    try:
        migrations.upgrade(store.engine)
        store.add_events([event_row(event(provider="self-hosted", model="gpt-4o", request_model="gpt-4o"))])
    finally:
        store.close()
    assert main(["reprice", "--db", db, "--no-infer"]) == 0
    assert "priced 0 of 1 unpriced events" in capsys.readouterr().out
    monkeypatch.setenv("TOLLMETER_INFER_PRICES", "0")
    assert main(["reprice", "--db", db]) == 0
    assert "priced 0 of 1 unpriced events" in capsys.readouterr().out
    monkeypatch.delenv("TOLLMETER_INFER_PRICES")
    assert main(["reprice", "--db", db]) == 0
    assert "priced 1 of 1 unpriced events" in capsys.readouterr().out
    store = open_store(db)
    try:
        with store.transaction() as conn:
            source = conn.execute(select(schema.events.c.price_source)).scalar_one()
        assert source.endswith("inferred from the model id")
    finally:
        store.close()
