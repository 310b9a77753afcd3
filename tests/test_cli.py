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
