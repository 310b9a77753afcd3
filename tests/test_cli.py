"""The `tollmeter` command line."""

from __future__ import annotations

import pytest
from genai_prices import data_snapshot
from genai_prices.update_prices import DEFAULT_UPDATE_URL

from tollmeter.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_prices_shows_the_match_rates_and_cost(capsys):
    code, out, _ = run(capsys, "prices", "gpt-4o-2024-08-06", "--provider", "openai",
                       "--input", "2006", "--cache-read", "1920", "--output", "300")
    assert code == 0
    assert "model:   openai/gpt-4o" in out and "genai-prices" in out
    assert "input_mtok" in out and "cache_read_mtok" in out
    assert "cost:    $0.005615" in out  # 86 x 2.50 + 1,920 x 1.25 + 300 x 10, per million


def test_prices_of_a_tier_and_long_context(capsys):
    _, out, _ = run(capsys, "prices", "o4-mini", "--service-tier", "flex", "--input", "1130", "--output", "845")
    assert "cost:    $0.0024805" in out
    _, out, _ = run(capsys, "prices", "gemini-2.5-pro", "--provider", "google", "--input", "250000", "--output", "1000")
    assert "cost:    $0.64" in out and "above 200,000 input tokens" in out


def test_unknown_model_exits_2_with_a_hint(capsys):
    code, _, err = run(capsys, "prices", "gpt-9-ultra", "--provider", "openai")
    assert code == 2 and "no price for 'gpt-9-ultra'" in err and "rate card" in err


def test_check_a_good_and_a_bad_rate_card(capsys, tmp_path):
    good = tmp_path / "rates.yaml"
    good.write_text("models:\n  - model: gpt-4o\n    input_mtok: 2\n    output_mtok: 8\n")
    code, out, _ = run(capsys, "prices", "--check", str(good))
    assert code == 0 and "1 entries, valid" in out and "input_mtok=2" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - model: gpt-4o\n    output_mtk: 8\n")
    code, _, err = run(capsys, "prices", "--check", str(bad))
    assert code == 2 and "bad.yaml:2" in err and "output_mtk" in err


def test_prices_with_a_rate_card(capsys, tmp_path):
    card = tmp_path / "rates.json"
    card.write_text('{"models": [{"model": "gpt-4o", "input_mtok": 2, "output_mtok": 8}]}')
    _, out, _ = run(capsys, "prices", "gpt-4o", "--rates", str(card), "--input", "1000", "--output", "100")
    assert "source:  rate card rates.json models[0]" in out and "cost:    $0.0028" in out


@pytest.fixture
def restore_bundled_prices():
    yield
    data_snapshot.set_custom_snapshot(None)


def test_refresh_uses_fetched_data(capsys, http_mock, restore_bundled_prices):
    http_mock.get(DEFAULT_UPDATE_URL).respond(json=[{
        "id": "openai", "name": "OpenAI", "api_pattern": "https://api\\.openai\\.com",
        "models": [{"id": "gpt-4o", "match": {"starts_with": "gpt-4o"}, "prices": {"input_mtok": 2, "output_mtok": 8}}],
    }])
    _, out, _ = run(capsys, "prices", "gpt-4o", "--provider", "openai", "--refresh", "--input", "1000", "--output", "100")
    assert "refreshed: genai-prices data fetched" in out and "cost:    $0.0028" in out


def test_failed_refresh_keeps_the_bundled_prices(capsys, http_mock, restore_bundled_prices):
    http_mock.get(DEFAULT_UPDATE_URL).respond(503)
    code, out, _ = run(capsys, "prices", "gpt-4o", "--provider", "openai", "--refresh", "--input", "1000")
    assert code == 0 and "refresh failed, using: genai-prices 0." in out
    assert "cost:    $0.0025" in out  # 1,000 x $2.50 per million, from the bundled data


# -- report and limits ----------------------------------------------------------------------------


def _store_with_events(path):
    from datetime import datetime, timezone
    from decimal import Decimal

    from tollmeter.store.store import Store

    store = Store(path)
    now = datetime.now(timezone.utc)
    rows = []
    for i, (tenant, model, cost) in enumerate([("acme", "gpt-4o", "0.25"), ("acme", "claude-sonnet-4-6", "0.50"),
                                               ("globex", "gpt-4o", "0.10"), ("globex", "mystery", None)]):
        rows.append({"event_id": f"e{i}", "timestamp": now, "tenant_id": tenant, "provider": "openai", "model": model,
                     "input_tokens": 100 * (i + 1), "output_tokens": 10 * (i + 1), "usage": {},
                     "cost_usd": Decimal(cost) if cost else None, "priced": cost is not None,
                     "stream": False, "partial": False})
    store.add_events(rows)
    store.set_limit("acme", "per_day", Decimal("1"))
    store.close()


def test_limits_set_list_remove(capsys, tmp_path):
    db = str(tmp_path / "t.db")
    code, out, _ = run(capsys, "limits", "set", "acme", "50", "--per", "month", "--db", db)
    assert code == 0 and "acme: $50 per_month" in out
    run(capsys, "limits", "set", "*", "5", "--per", "day", "--db", db)
    code, out, _ = run(capsys, "limits", "list", "--db", db)
    assert "acme" in out and "per_month" in out and "$50" in out and "*" in out
    code, out, _ = run(capsys, "limits", "remove", "acme", "--db", db)
    assert code == 0 and "removed 1 limit" in out
    code, out, _ = run(capsys, "limits", "list", "acme", "--db", db)
    assert "no limits for acme" in out
    code, _, err = run(capsys, "limits", "set", "acme", "lots", "--db", db)
    assert code == 2 and "limit_usd" in err


def test_report_per_tenant_and_model(capsys, tmp_path):
    db = str(tmp_path / "t.db")
    _store_with_events(db)
    code, out, _ = run(capsys, "report", "--db", db)
    assert code == 0
    lines = out.splitlines()
    acme = next(line for line in lines if line.startswith("acme"))
    globex = next(line for line in lines if line.startswith("globex"))
    # acme: 2 calls, 300 input, 30 output, $0.75 of a $1 daily limit
    assert acme.split()[:5] == ["acme", "2", "300", "30", "$0.750000"] and "75%" in acme and "$1 per_day" in acme
    assert globex.split()[:5] == ["globex", "2", "700", "70", "$0.100000"] and globex.split()[5] == "1"  # 1 unpriced
    assert "claude-sonnet-4-6" in out and "Per model" in out


def test_report_filters_and_a_missing_store(capsys, tmp_path):
    db = str(tmp_path / "t.db")
    _store_with_events(db)
    _, out, _ = run(capsys, "report", "--db", db, "--tenant", "globex", "--since", "24h")
    assert "globex" in out and "acme" not in out.split("Per model")[0]
    code, _, err = run(capsys, "report", "--db", str(tmp_path / "nope.db"))
    assert code == 2 and "no store at" in err
    code, _, err = run(capsys, "report", "--db", db, "--since", "last week")
    assert code == 2 and "--since" in err


# -- customers, margin and leaks ----------------------------------------------------------------


def _business_store(path):
    """acme: $2 per run, two runs (resolved, failed) of $0.25 each; hooli: $1 a month, $3 of calls
    today (a leak); all from the 1st of this month."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from tollmeter.store.ledger import Ledger
    from tollmeter.store.store import Store

    store = Store(path)
    now = datetime.now(timezone.utc)
    first = now.date().replace(day=1)
    ledger = Ledger(store)
    ledger.upsert_customer("acme", name="Acme", plan={"name": "pro", "pricing_model": "per_unit",
                                                      "unit_revenue_usd": "2"}, effective_from=first)
    ledger.upsert_customer("hooli", plan={"name": "basic", "pricing_model": "flat", "base_revenue_usd": "1"},
                           effective_from=first)
    rows = []
    for i, (tenant, run, cost) in enumerate([("acme", "t-1", "0.25"), ("acme", "t-2", "0.25"),
                                             ("hooli", None, "3")]):
        rows.append({"event_id": f"e{i}", "timestamp": now, "tenant_id": tenant, "run_id": run,
                     "agent_id": "bot" if run else None, "provider": "openai", "model": "gpt-4o",
                     "input_tokens": 100, "output_tokens": 10, "usage": {}, "cost_usd": Decimal(cost),
                     "priced": True, "stream": False, "partial": False})
    store.add_events(rows)
    ledger.resolve("t-1", "resolved")
    ledger.resolve("t-2", "failed")
    store.close()


def test_customers_set_list_show(capsys, tmp_path):
    import json

    db = str(tmp_path / "t.db")
    code, out, _ = run(capsys, "customers", "set", "acme", "--name", "Acme", "--plan", "pro", "--model", "per_unit",
                       "--unit-revenue", "2", "--from", "2026-01-01", "--db", db)
    assert code == 0 and "pro (per_unit): $2.00 per run" in out and "2026-01-01" in out
    code, out, _ = run(capsys, "customers", "set", "hooli", "--plan-json",
                       '{"name": "team", "pricing_model": "per_seat", "seat_revenue_usd": "12.5"}', "--seats", "4",
                       "--from", "2026-01-01", "--db", db)
    assert code == 0 and "$12.50 per seat per month x 4 = $50.00" in out
    run(capsys, "customers", "set", "hooli", "--seats", "6", "--from", "2026-02-01", "--db", db)
    code, out, _ = run(capsys, "customers", "list", "--db", db)
    lines = out.splitlines()
    assert lines[0].split() == ["tenant", "name", "plan", "model", "price", "seats", "since"]
    acme = next(line for line in lines if line.startswith("acme"))
    hooli = next(line for line in lines if line.startswith("hooli"))
    assert "Acme" in acme and "$2.00 per run" in acme and acme.endswith("2026-01-01")
    assert hooli.split()[-2:] == ["6", "2026-02-01"]
    assert lines[2].index("pro") == lines[0].index("plan")  # aligned columns
    code, out, _ = run(capsys, "customers", "show", "hooli", "--db", db, "--format", "json")
    shown = json.loads(out)
    assert shown["seats"] == 6 and [s["seats"] for s in shown["history"]] == [4, 6]
    assert json.loads(run(capsys, "customers", "list", "--db", db, "--format", "json")[1])["customers"][0][
        "plan"] == {"name": "pro", "pricing_model": "per_unit", "unit_revenue_usd": "2"}
    code, _, err = run(capsys, "customers", "show", "globex", "--db", db)
    assert code == 1 and "no customer 'globex'" in err


@pytest.mark.parametrize("argv, reason", [
    (["--plan", "pro", "--model", "per_unit"], "unit_revenue_usd"),  # a plan without its amounts
    (["--model", "flat", "--base-revenue", "-5"], "base_revenue_usd must be >= 0"),
    (["--model", "flat", "--base-revenue", "NaN"], "base_revenue_usd must be finite"),
    (["--unit-revenue", "2"], "--model"),
    (["--plan-json", '{"name": "x", "pricing_model": "per_minute"}'], "pricing_model"),
    (["--plan-json", "{not json"], "--plan-json"),
    (["--plan-json", '{"name": "x", "pricing_model": "flat", "base_revenue_usd": "1"}', "--model", "flat"], "not both"),
    (["--model", "per_seat", "--seat-revenue", "10", "--seats", "-1"], "seats"),
    (["--seats", "3"], "no plan"),
    (["--model", "flat", "--base-revenue", "1", "--from", "2026-02-30"], "--from"),
])
def test_customers_set_refuses_bad_input(capsys, tmp_path, argv, reason):
    db = str(tmp_path / "t.db")
    code, _, err = run(capsys, "customers", "set", "acme", *argv, "--db", db)
    assert code == 2 and reason in err
    _, out, err = run(capsys, "customers", "list", "--db", db)
    assert "no customers" in out or "no store at" in err  # nothing stored


def test_margin_table_json_and_csv(capsys, tmp_path):
    import csv
    import io
    import json
    from decimal import Decimal

    db = str(tmp_path / "t.db")
    _business_store(db)
    code, out, _ = run(capsys, "margin", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Margin by tenant: ") and lines[0].endswith("(UTC)")
    header = lines[2]
    assert header.split()[:5] == ["tenant", "revenue", "cost", "margin", "margin"]
    acme = next(line for line in lines if line.startswith("acme"))
    assert acme.split()[:5] == ["acme", "$4.00", "$0.50", "$3.50", "87.5%"]
    assert acme.split()[5:] == ["2", "2", "50.0%", "$0.50"]  # calls, runs, resolved %, cost per resolved run
    total = lines[-1]
    assert total.startswith("TOTAL") and lines[-2].startswith("------")
    assert len({len(line) for line in lines[2:] if line.strip()}) == 1  # aligned: every row as wide
    hooli = next(line for line in lines if line.startswith("hooli"))
    assert hooli.split()[2:4] == ["$3.00", f"-${(3 - Decimal(hooli.split()[1][1:])):.2f}"]

    report = json.loads(run(capsys, "margin", "--db", db, "--group-by", "tenant,run", "--format", "json")[1])
    rows = {(r["tenant"], r["run"]): r for r in report["rows"]}
    assert rows[("acme", "t-1")]["revenue_usd"] == "2" and rows[("acme", "t-2")]["failed"] == 1
    assert Decimal(report["total"]["cost_usd"]) == Decimal("3.5")
    assert sum(Decimal(r["revenue_usd"]) for r in report["rows"]) == Decimal(report["total"]["revenue_usd"])

    out = run(capsys, "margin", "--db", db, "--group-by", "run", "--format", "csv")[1]
    table = list(csv.reader(io.StringIO(out)))
    assert table[0][:4] == ["run", "revenue_usd", "cost_usd", "margin_usd"]
    assert table[-1][0] == "TOTAL" and table[-1][1] == report["total"]["revenue_usd"]  # full precision
    assert [line[0] for line in table[1:-1]] == ["t-1", "t-2", ""]

    assert "acme" not in run(capsys, "margin", "--db", db, "--tenant", "hooli")[1]
    assert "TOTAL" in run(capsys, "margin", "--db", db, "--since", "7d", "--until", "2099-01-01")[1]
    code, _, err = run(capsys, "margin", "--db", db, "--group-by", "planet")
    assert code == 2 and "cannot group by 'planet'" in err
    code, _, err = run(capsys, "margin", "--db", db, "--since", "last week")
    assert code == 2 and "--since" in err
    code, _, err = run(capsys, "margin", "--db", str(tmp_path / "nope.db"))
    assert code == 2 and "no store at" in err


def test_leaks_table_json_and_csv(capsys, tmp_path):
    import csv
    import io
    import json

    db = str(tmp_path / "t.db")
    _business_store(db)
    code, out, _ = run(capsys, "leaks", "--db", db)
    assert code == 0 and " this month (to " in out.splitlines()[0]
    over = next(line for line in out.splitlines() if line.startswith("cost_over_revenue"))
    assert "customer hooli" in over and "hooli costs more than its plan brings in: -$" in over
    leaks = json.loads(run(capsys, "leaks", "--db", db, "--format", "json")[1])["leaks"]
    assert "cost_over_revenue" in {leak["rule"] for leak in leaks}
    table = list(csv.reader(io.StringIO(run(capsys, "leaks", "--db", db, "--format", "csv")[1])))
    assert table[0][:6] == ["rule", "subject", "subject_id", "tenant_id", "since", "message"]
    assert len(table) == 1 + len(leaks)
    floor = json.loads(run(capsys, "leaks", "--db", db, "--format", "json", "--margin-floor-pct", "99")[1])
    assert len(floor["leaks"]) >= len(leaks)  # settings are taken
    code, _, err = run(capsys, "leaks", "--db", db, "--spike-factor", "-2")
    assert code == 2 and "spike-factor" in err
    empty = str(tmp_path / "empty.db")
    run(capsys, "customers", "set", "acme", "--model", "flat", "--base-revenue", "100", "--db", empty)
    assert run(capsys, "leaks", "--db", empty)[1].startswith("no leaks this month")


def test_business_commands_read_a_server_project(capsys, tmp_path):
    db = str(tmp_path / "server.db")
    code, _, _ = run(capsys, "customers", "set", "acme", "--model", "flat", "--base-revenue", "10", "--db", db,
                     "--project", "acme-prod")
    assert code == 0
    assert "acme" in run(capsys, "customers", "list", "--db", db, "--project", "acme-prod")[1]
    assert "no customers" in run(capsys, "customers", "list", "--db", db)[1]  # the embedded store's own project
    assert "acme" in run(capsys, "margin", "--db", db, "--project", "acme-prod")[1]
