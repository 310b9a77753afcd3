"""The dashboard over HTTP, on a real server process (SQLite and PostgreSQL) and on
`tollmeter dashboard` (the embedded store): sign-in, sessions, CSRF, isolation between
projects, bad input, and every number a page shows against the API's answer for the same range.
The browser half is tests/test_dashboard_browser.py."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from html import unescape
from typing import Any

import httpx
import pytest

from tollmeter.dashboard.sessions import COOKIE, Session, Sessions
from tollmeter.money import usd_text
from tollmeter.server.auth import revoke_key

from .margin_support import store  # noqa: F401  (the fixture: a store on SQLite and on PostgreSQL)
from .server_support import BACKENDS, Api, event, running_server

D = Decimal
UTC = timezone.utc


# -- seeding ---------------------------------------------------------------------------------------


def month_days(count: int) -> list[datetime]:
    """Up to `count` moments on distinct days of the current UTC month, latest first (today)."""
    now = datetime.now(UTC).replace(microsecond=0)
    out = []
    for back in range(count):
        moment = now - timedelta(days=back)
        if moment.month != now.month:
            break
        out.append(moment - timedelta(minutes=5))
    return out


def seed(api: Api, prefix: str = "") -> dict[str, str]:
    """A small business in `api`'s project: three customers on different plans, runs with
    outcomes, a tenant without a plan, an unpriced model, a limit. Returns the tenant ids."""
    t = {name: f"{prefix}{name}" for name in ("acme", "globex", "initech", "hooli")}
    days = month_days(3)
    events = []
    for n, moment in enumerate(days):
        stamp = moment.isoformat()
        # acme: a costly support bot on a cheap flat plan (loses money).
        events += [event(tenant_id=t["acme"], agent_id="support-bot", run_id=f"{t['acme']}-ticket-{n}-{i}",
                         timestamp=stamp, usage={"input_tokens": 400_000, "output_tokens": 20_000,
                                                 "cache_read_tokens": 100_000}) for i in range(3)]
        # globex: an analyst paid per resolved run.
        events += [event(tenant_id=t["globex"], agent_id="analyst", run_id=f"{t['globex']}-report-{n}",
                         timestamp=stamp, usage={"input_tokens": 50_000, "output_tokens": 5_000})]
        # initech: usage-based, two agents; hooli: no plan, and a model nobody prices.
        events += [event(tenant_id=t["initech"], agent_id=agent, timestamp=stamp) for agent in ("writer", "editor")]
        events += [event(tenant_id=t["hooli"], model="mystery-model", request_model="mystery-model", timestamp=stamp)]
    response = api.ingest(events)
    assert response.status_code == 200 and not response.json()["rejected"], response.text
    first = days[-1].date().isoformat()
    plans = {
        "acme": {"name": "starter", "pricing_model": "flat", "base_revenue_usd": "3"},
        "globex": {"name": "per-report", "pricing_model": "per_resolution", "unit_revenue_usd": "5"},
        "initech": {"name": "metered", "pricing_model": "usage_based", "markup": "0.5"},
    }
    for name, plan in plans.items():
        r = api.http.put(f"/v1/customers/{t[name]}", json={"name": name.title(), "plan": plan, "effective_from": first})
        assert r.status_code == 200, r.text
    for n in range(len(days)):
        r = api.http.post(f"/v1/runs/{t['globex']}-report-{n}/resolve",
                          json={"outcome": "resolved" if n % 2 == 0 else "escalated"})
        assert r.status_code == 200, r.text
        r = api.http.post(f"/v1/runs/{t['acme']}-ticket-{n}-0/resolve", json={"outcome": "resolved"})
        assert r.status_code == 200, r.text
    r = api.http.put(f"/v1/limits/{t['acme']}", json={"limit_usd": "10", "frequency": "per_month"})
    assert r.status_code == 200, r.text
    return t


# -- a browser-less visitor --------------------------------------------------------------------------


class Visitor:
    """An httpx client that keeps its cookies and reads the CSRF token of the last form."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
        self.csrf = ""

    def get(self, path: str, **kw: Any) -> httpx.Response:
        response = self.http.get(path, **kw)
        found = re.search(r'name="csrf" value="([^"]+)"', response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, str], csrf: bool = True) -> httpx.Response:
        return self.http.post(path, data={**({"csrf": self.csrf} if csrf else {}), **data})

    def sign_in(self, key: str) -> httpx.Response:
        self.get("/signin")
        response = self.post("/signin", {"key": key, "next": "/"})
        assert response.status_code == 303, response.text
        return response


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


@pytest.fixture(params=BACKENDS)
def server(request: Any):
    return running_server(request.param)


@pytest.fixture
def shop(server):
    api = server.project("dash")
    tenants = seed(api)
    visitor = Visitor(server.base)
    visitor.sign_in(api.key)
    return api, tenants, visitor


# -- sign-in and sessions ----------------------------------------------------------------------------


def test_every_page_needs_a_sign_in(server) -> None:
    visitor = Visitor(server.base)
    for path in ("/", "/customers", "/customers.csv", "/customers/acme", "/models", "/limits"):
        response = visitor.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/signin?next="), path
    assert visitor.post("/limits", {"tenant_id": "acme", "frequency": "per_month", "limit_usd": "1",
                                    "confirmed": "yes"}).status_code == 303


def test_sign_in_sets_a_strict_httponly_cookie_that_expires(server) -> None:
    api = server.project("dash")
    visitor = Visitor(server.base)
    page = visitor.get("/signin?next=/models")
    assert page.status_code == 200 and 'name="key"' in page.text
    assert visitor.post("/signin", {"key": api.key + "x", "next": "/"}).status_code == 401
    assert visitor.post("/signin", {"key": "", "next": "/"}).status_code == 401
    response = visitor.post("/signin", {"key": api.key, "next": "/models"})
    assert response.status_code == 303 and response.headers["location"] == "/models"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Max-Age=28800", "Path=/"):
        assert attribute.lower() in cookie.lower(), cookie
    assert api.key not in cookie
    page = visitor.get("/models")
    assert page.status_code == 200 and api.project in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    assert page.headers["x-frame-options"] == "DENY"
    # Signing out ends the session.
    assert visitor.post("/signout", {}).status_code == 303
    assert visitor.get("/models").status_code == 303


def test_sign_in_goes_only_to_a_page_of_this_site(server) -> None:
    api = server.project("dash")
    visitor = Visitor(server.base)
    for target in ("//evil.example/", "https://evil.example/", "\\\\evil.example", "evil"):
        visitor.get("/signin")  # a sign-in draws a new CSRF token: the form's, each time
        response = visitor.post("/signin", {"key": api.key, "next": target})
        assert response.headers["location"] == "/", target


def test_a_revoked_key_ends_its_sessions(server) -> None:
    api = server.project("dash")
    visitor = Visitor(server.base)
    visitor.sign_in(api.key)
    assert visitor.get("/limits").status_code == 200
    revoke_key(server.store, api.key)
    assert visitor.get("/limits").status_code == 303


def test_a_session_expires_and_a_forged_one_is_refused(monkeypatch) -> None:
    import itsdangerous.timed
    from starlette.requests import Request
    from starlette.responses import Response

    sessions = Sessions("secret", max_age=3600)
    response = Response()
    sessions.save(response, Session("token", "acme-project", "abc123"))
    value = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]

    def request(cookie: str) -> Request:
        return Request({"type": "http", "headers": [(b"cookie", f"{COOKIE}={cookie}".encode())]})

    assert sessions.load(request(value)).project == "acme-project"
    assert Sessions("other secret").load(request(value)).project is None
    assert sessions.load(request(value[:-2] + "xx")).project is None
    clock = itsdangerous.timed.time.time()
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: clock + 3601)
    expired = sessions.load(request(value))
    assert expired.project is None and expired.fresh


# -- CSRF ------------------------------------------------------------------------------------------


def test_csrf_refused_on_every_form(shop) -> None:
    api, t, visitor = shop
    change = {"tenant_id": t["acme"], "frequency": "per_month", "limit_usd": "99", "confirmed": "yes"}
    assert visitor.post("/limits", change, csrf=False).status_code == 403
    assert visitor.http.post("/limits", data={**change, "csrf": "not-the-token"}).status_code == 403
    assert visitor.post("/limits/confirm", change, csrf=False).status_code == 403
    assert visitor.post("/signout", {}, csrf=False).status_code == 403
    assert api.http.get(f"/v1/limits/{t['acme']}").json()["limits"][0]["limit_usd"] == "10"
    stranger = Visitor(visitor.http.base_url)  # a token of another session is not this one's
    stranger.get("/signin")
    assert visitor.http.post("/limits", data={**change, "csrf": stranger.csrf}).status_code == 403
    assert stranger.post("/signin", {"key": api.key}, csrf=False).status_code == 403  # sign-in too


def test_a_limit_set_through_the_form_is_what_the_api_says(shop) -> None:
    api, t, visitor = shop
    visitor.get("/limits")
    confirm = visitor.post("/limits/confirm", {"tenant_id": t["globex"], "frequency": "per_day", "limit_usd": "12.5"})
    assert confirm.status_code == 200
    assert "Confirm the limit" in confirm.text and "$12.50" in confirm.text
    assert api.http.get(f"/v1/limits/{t['globex']}").json()["limits"] == []  # nothing yet: only confirmed
    done = visitor.post("/limits", {"tenant_id": t["globex"], "frequency": "per_day", "limit_usd": "12.5",
                                    "confirmed": "yes"})
    assert done.status_code == 303 and done.headers["location"].startswith("/limits?changed=")
    limits = api.http.get(f"/v1/limits/{t['globex']}").json()["limits"]
    assert limits == [{"frequency": "per_day", "limit_usd": "12.5", "default": False}]
    page = visitor.get("/limits")
    assert f'data-tenant="{t["globex"]}" data-frequency="per_day"' in page.text
    # Changing one shows the old amount on the confirmation page.
    again = visitor.post("/limits/confirm", {"tenant_id": t["globex"], "frequency": "per_day", "limit_usd": "20"})
    assert "instead of $12.50" in text_of(again.text)


@pytest.mark.parametrize("fields, reason", [
    ({"tenant_id": "", "frequency": "per_month", "limit_usd": "5"}, "tenant"),
    ({"tenant_id": "x" * 256, "frequency": "per_month", "limit_usd": "5"}, "tenant"),
    ({"tenant_id": "a\x00b", "frequency": "per_month", "limit_usd": "5"}, "tenant"),
    ({"tenant_id": "acme", "frequency": "per_week", "limit_usd": "5"}, "frequency"),
    ({"tenant_id": "acme", "frequency": "per_month", "limit_usd": "five"}, "limit_usd"),
    ({"tenant_id": "acme", "frequency": "per_month", "limit_usd": "NaN"}, "limit_usd"),
    ({"tenant_id": "acme", "frequency": "per_month", "limit_usd": "-1"}, "limit_usd"),
    ({"tenant_id": "acme", "frequency": "per_month", "limit_usd": "1e30"}, "limit_usd"),
])
def test_a_bad_limit_is_refused_with_its_reason(shop, fields, reason) -> None:
    api, t, visitor = shop
    visitor.get("/limits")
    for path in ("/limits/confirm", "/limits"):
        response = visitor.post(path, {**fields, "confirmed": "yes"})
        assert response.status_code == 400, (path, response.text)
        assert reason in text_of(response.text)
    assert api.http.get(f"/v1/limits/{t['acme']}").json()["limits"][0]["limit_usd"] == "10"


def test_bad_query_values_are_a_400_page(shop) -> None:
    _, _, visitor = shop
    for path in ("/?since=yesterday", "/?bucket=year", "/customers?since=2026-02-30", "/models?since=2026-12-05&until=2026-12-01",
                 "/?since=0001-01-01", "/customers/" + "x" * 300):
        response = visitor.get(path)
        assert response.status_code == 400, path
    assert visitor.get("/customers/nobody-at-all").status_code == 404
    # NUL and broken UTF-8 anywhere: answered, never a 5xx (a database refuses NUL in a query).
    for path in ("/customers?q=a%00b", "/customers?q=%ED%A0%80", "/customers/a%00b", "/customers/%ED%A0%80",
                 "/?since=%00", "/customers.csv?sort=%00&q=%ED%A0%80", "/models?bucket=%ED%A0%80"):
        assert visitor.get(path).status_code < 500, path


# -- one project never sees another's -------------------------------------------------------------


def test_a_project_never_sees_another_projects_data(server) -> None:
    mine, theirs = server.project("dash"), server.project("dash")
    my_tenants = seed(mine, prefix="mine-")
    their_tenants = seed(theirs, prefix="theirs-")
    visitor = Visitor(server.base)
    visitor.sign_in(mine.key)
    pages = ["/", "/customers", "/customers.csv", "/models", "/limits", f"/customers/{my_tenants['acme']}"]
    for path in pages:
        response = visitor.get(path)
        assert response.status_code == 200, path
        assert my_tenants["acme"] in response.text or path == "/models", path
        for tenant in their_tenants.values():
            assert tenant not in response.text, (path, tenant)
    assert visitor.get(f"/customers/{their_tenants['acme']}").status_code == 404
    # Their limit cannot be set from my session: it lands in my project, theirs is untouched.
    visitor.get("/limits")
    visitor.post("/limits", {"tenant_id": their_tenants["acme"], "frequency": "per_month", "limit_usd": "1",
                             "confirmed": "yes"})
    assert theirs.http.get(f"/v1/limits/{their_tenants['acme']}").json()["limits"][0]["limit_usd"] == "10"
    assert mine.http.get(f"/v1/limits/{their_tenants['acme']}").json()["limits"][0]["limit_usd"] == "1"


# -- the numbers are the API's ----------------------------------------------------------------------


def _measure(html: str, name: str) -> str:
    found = re.search(rf'data-measure="{name}" title="([^"]*)"', html)
    assert found, name
    return found.group(1)


def test_overview_numbers_are_the_apis(shop) -> None:
    api, t, visitor = shop
    for bucket in ("day", "week", "month"):
        page = visitor.get(f"/?bucket={bucket}")
        assert page.status_code == 200
        since, until = re.search(r'name="since" value="([^"]+)"', page.text).group(1), \
            re.search(r'name="until" value="([^"]+)"', page.text).group(1)
        report = api.http.get("/v1/margin", params={"group_by": bucket, "since": since, "until": until}).json()
        for measure in ("revenue_usd", "cost_usd", "margin_usd"):
            assert D(_measure(page.text, measure)) == D(report["total"][measure]), (bucket, measure)
        table = re.search(r'<table class="numbers" id="buckets">(.*?)</table>', page.text, re.S).group(1)
        for row in report["rows"]:
            cells = f"<tr><td>{row[bucket]}</td><td class=\"r\">{usd_text(D(row['revenue_usd']))}</td>" \
                    f"<td class=\"r\">{usd_text(D(row['cost_usd']))}</td>"
            assert cells in table, (bucket, row)
    page = visitor.get("/")
    shown = text_of(page.text)
    by_tenant = api.http.get("/v1/margin", params={"group_by": "tenant"}).json()["rows"]
    losers = [r for r in by_tenant if D(r["margin_usd"]) < 0]
    assert losers and all(r["tenant"] in shown for r in losers)
    assert "mystery-model" in shown and "tollmeter reprice" in shown  # the unpriced model, with the fix
    leaks = api.http.get("/v1/leaks").json()["leaks"]
    assert f"({len(leaks)} this month, UTC)" in shown
    for leak in leaks:
        if leak["subject"] == "customer":  # listed first (runs' flags after, the first 12 in all)
            assert leak["message"] in shown


def test_customers_csv_is_the_apis_margin_and_spend(shop) -> None:
    api, t, visitor = shop
    response = visitor.get("/customers.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = {r["tenant_id"]: r for r in csv.DictReader(io.StringIO(response.text))}
    assert set(rows) == set(t.values())
    report = {r["tenant"]: r for r in api.http.get("/v1/margin", params={"group_by": "tenant"}).json()["rows"]}
    for tenant, row in rows.items():
        api_row = report[tenant]
        for measure in ("revenue_usd", "cost_usd", "margin_usd"):
            assert D(row[measure]) == D(api_row[measure]), (tenant, measure)
        assert int(row["calls"]) == api_row["calls"]
    spend = api.spend(t["acme"])
    limit = D(spend["limits"][0]["limit_usd"])
    assert D(rows[t["acme"]]["per_month_limit_used_pct"]) == (D(spend["spent"]["per_month"]) / limit * 100).quantize(D("0.1"))
    assert rows[t["globex"]]["plan"] == "per-report" and rows[t["hooli"]]["plan"] == ""
    leaking = {leak["tenant_id"] for leak in api.http.get("/v1/leaks").json()["leaks"]}
    assert {tenant for tenant, row in rows.items() if row["leaks"]} == leaking


def test_customers_sort_and_filter(shop) -> None:
    api, t, visitor = shop

    def order(query: str) -> list[str]:
        page = visitor.get("/customers?" + query)
        assert page.status_code == 200
        return re.findall(r'<tr data-tenant="([^"]+)">', page.text)

    assert order("sort=tenant&dir=asc") == sorted(t.values())
    assert order("sort=tenant&dir=desc") == sorted(t.values(), reverse=True)
    report = api.http.get("/v1/margin", params={"group_by": "tenant"}).json()["rows"]
    by_cost = [r["tenant"] for r in sorted(report, key=lambda r: (-D(r["cost_usd"]), r["tenant"]))]
    assert order("sort=cost&dir=desc")[:len(by_cost)] == by_cost
    assert order("q=GLOB") == [t["globex"]]
    assert order("q=usage_based") == [t["initech"]]  # by pricing model
    assert order("q=no-such-customer") == []
    csv_rows = list(csv.reader(io.StringIO(visitor.get("/customers.csv?q=glob").text)))
    assert [r[0] for r in csv_rows[1:]] == [t["globex"]]


def test_customer_page_is_the_apis(shop) -> None:
    api, t, visitor = shop
    page = visitor.get(f"/customers/{t['globex']}")
    assert page.status_code == 200
    report = api.http.get("/v1/margin", params={"group_by": "run", "tenant_id": t["globex"]}).json()
    for measure in ("revenue_usd", "cost_usd", "margin_usd"):
        assert D(_measure(page.text, measure)) == D(report["total"][measure]), measure
    shown = text_of(page.text)
    assert "per-report (per_resolution): $5.00 per resolved run" in shown
    runs = re.search(r'<table id="runs">(.*?)</table>', page.text, re.S).group(1)
    for row in report["rows"]:
        if row["run"]:
            outcome = "resolved" if row["resolved"] else "escalated" if row["escalated"] else "open"
            assert re.search(rf"<td>{re.escape(row['run'])}</td><td><span class=\"outcome {outcome}\">", runs), row
    assert page.text.count("<svg") == 2 and "analyst" in shown
    initech = visitor.get(f"/customers/{t['initech']}")
    for group, table_id in (("agent", "agents"), ("model", "models")):
        rows = api.http.get("/v1/margin", params={"group_by": group, "tenant_id": t["initech"]}).json()["rows"]
        table = re.search(rf'<table id="{table_id}">(.*?)</table>', initech.text, re.S).group(1)
        for row in rows:
            if row["calls"]:
                assert (f"<td>{row[group]}</td><td class=\"r\">{row['calls']:,}</td>"
                        f"<td class=\"r\">{usd_text(D(row['cost_usd']))}</td>") in table, (group, row)
    flags_shown = 0
    for tenant in t.values():  # its leak flags: the API's for it
        flagged = api.http.get("/v1/leaks", params={"tenant_id": tenant}).json()["leaks"]
        everyone = api.http.get("/v1/leaks").json()["leaks"]
        assert [f for f in everyone if f["tenant_id"] == tenant] == [f for f in flagged if f["tenant_id"] == tenant]
        page_text = text_of(visitor.get(f"/customers/{tenant}").text)
        for leak in flagged:
            assert leak["message"] in page_text
            flags_shown += 1
        if not flagged:
            assert "No leak flags this month." in page_text
    assert flags_shown  # the shop has customers that leak
    acme = visitor.get(f"/customers/{t['acme']}")
    spend = api.spend(t["acme"])
    assert usd_text(D(spend["spent"]["per_month"])) in text_of(acme.text)


def test_models_page_is_the_apis_usage(shop) -> None:
    api, t, visitor = shop
    page = visitor.get("/models")
    since = re.search(r'name="since" value="([^"]+)"', page.text).group(1)
    until = re.search(r'name="until" value="([^"]+)"', page.text).group(1)
    rows = api.usage(group_by="provider,model", since=since, until=until)
    table = re.search(r'<table id="model-table">(.*?)</table>', page.text, re.S).group(1)
    for row in rows:
        share = (D(row["cache_read_tokens"]) / row["input_tokens"] * 100).quantize(D("0.1")) if row["input_tokens"] else None
        cells = (f"<td>{row['provider']}</td><td>{row['model']}</td>\n<td class=\"r\">{row['calls']:,}</td>"
                 f"<td class=\"r\">{row['input_tokens']:,}</td><td class=\"r\">{row['output_tokens']:,}</td>"
                 f"<td class=\"r\">{f'{share}%' if share is not None else '-'}</td>"
                 f"<td class=\"r\" title=\"{D(row['cost_usd']):f}\">")
        assert cells in table, row
    assert "mystery-model" in table


# -- tollmeter dashboard (the embedded store) ----------------------------------------------------------


def test_tollmeter_dashboard_serves_the_embedded_store_on_localhost(tmp_path) -> None:
    from tollmeter.store.store import Store

    from .margin_support import add, event as stored_event

    path = tmp_path / "local.db"
    store = Store(str(path))
    today = datetime.now(UTC).date()
    add(store, stored_event(today, "1.25", tenant="local-acme", agent="bot", model="gpt-4o", input_tokens=10))
    store.close()
    env = {**os.environ, "TOLLMETER_DB": str(path)}
    process = subprocess.Popen([sys.executable, "-m", "tollmeter.cli", "dashboard", "--db", str(path), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines: list[str] = []
        found = None
        while found is None and len(lines) < 50:  # the URL, after any warning the process logs first
            lines.append(process.stdout.readline())
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", lines[-1])
            if not lines[-1] and process.poll() is not None:
                break
        assert found, "".join(lines)
        visitor = Visitor(found.group(0))
        page = visitor.get("/")
        assert page.status_code == 200 and "local-acme" in page.text and "embedded store" in page.text
        assert visitor.get("/signin").status_code == 303  # nothing to sign in to
        assert visitor.get("/customers/local-acme").status_code == 200
        # Forms still need the CSRF token; a foreign Host (DNS rebinding) is refused.
        change = {"tenant_id": "local-acme", "frequency": "per_day", "limit_usd": "3", "confirmed": "yes"}
        assert visitor.post("/limits", change, csrf=False).status_code == 403
        visitor.get("/limits")
        assert visitor.post("/limits", change).status_code == 303
        assert visitor.http.get("/", headers={"Host": "evil.example"}).status_code == 400
    finally:
        process.terminate()
        process.wait(10)
    store = Store(str(path))
    try:
        assert [(lim.frequency, lim.limit_usd) for lim in store.limits_for("local-acme")] == [("per_day", D("3"))]
    finally:
        store.close()


def test_tollmeter_dashboard_without_a_store_says_so(tmp_path) -> None:
    from tollmeter.cli import main

    assert main(["dashboard", "--db", str(tmp_path / "missing.db"), "--port", "0"]) == 2


# -- notifications ------------------------------------------------------------------------------------


def test_notifications_endpoint_form_and_delivery_log(shop) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tollmeter.notifications.runner import Notifier
    from tollmeter.notifications.settings import NotifierSettings

    api, t, visitor = shop
    received: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    try:
        page = visitor.get("/notifications")
        assert page.status_code == 200 and "No endpoint yet." in page.text
        assert visitor.post("/notifications/endpoints", {"url": url}, csrf=False).status_code == 403
        bad = visitor.post("/notifications/endpoints", {"url": "ftp://nowhere", "rule": "limit"})
        assert bad.status_code == 400 and "url" in text_of(bad.text)
        visitor.get("/notifications")
        created = visitor.http.post("/notifications/endpoints", data={
            "csrf": visitor.csrf, "url": url, "format": "json", "rule": ["limit", "leak"], "thresholds": "50, 100",
            "description": "ops channel"})
        assert created.status_code == 200
        secret = re.search(r'<code id="secret">([^<]+)</code>', created.text).group(1)
        endpoints = api.http.get("/v1/notifications/endpoints").json()["endpoints"]
        assert len(endpoints) == 1 and endpoints[0]["url"] == url and endpoints[0]["rules"] == ["limit", "leak"]
        assert endpoints[0]["thresholds"] == [50, 100] and endpoints[0]["secret_hint"] == "..." + secret[-4:]
        assert secret not in visitor.get("/notifications").text  # shown once
        # acme has spent most of its $10 a month: one round of the rules sends the 50% notification.
        Notifier(api.server.store, NotifierSettings(enabled=True)).run_once()
        deliveries = api.http.get("/v1/notifications/deliveries").json()["deliveries"]
        assert deliveries and received
        log = visitor.get("/notifications")
        table = re.search(r'<table id="deliveries">(.*?)</table>', log.text, re.S).group(1)
        for delivery in deliveries:
            assert delivery["event"] in table and delivery["status"] in table
        # Turned off from the page: the API says so.
        endpoint_id = endpoints[0]["endpoint_id"]
        assert visitor.post("/notifications/endpoints", {"endpoint_id": endpoint_id, "enabled": "no"}).status_code == 303
        assert api.http.get("/v1/notifications/endpoints").json()["endpoints"][0]["enabled"] is False
        # Another project's session sees none of it, and cannot turn it back on.
        other = api.server.project("dash")
        stranger = Visitor(api.server.base)
        stranger.sign_in(other.key)
        assert url not in stranger.get("/notifications").text
        assert stranger.post("/notifications/endpoints", {"endpoint_id": endpoint_id, "enabled": "yes"}).status_code == 400
        assert api.http.get("/v1/notifications/endpoints").json()["endpoints"][0]["enabled"] is False
    finally:
        receiver.shutdown()


# -- limit states of many tenants at once ----------------------------------------------------------


def test_limit_states_of_many_tenants_equal_one_by_one(store) -> None:
    """limit_states_of (the customers and limits pages) against Store.limit_states per tenant:
    own limits, the default ones, none; spend in and out of the current periods; leases."""
    from tollmeter.limits.standing import limit_states_of

    from tollmeter.limits.periods import period_key

    now = datetime.now(UTC)
    long_ago = now - timedelta(days=40)
    spend = {("own", period_key("per_day", now)): D("1.5"), ("own", period_key("total", now)): D("10.5"),
             ("own", period_key("per_day", long_ago)): D("9"), ("defaulted", period_key("per_month", now)): D("0.25"),
             ("free", period_key("per_month", long_ago)): D("2")}
    with store.transaction() as conn:
        store.add_spend(conn, spend)
    store.set_limit("own", "per_day", D("5"))
    store.set_limit("own", "total", D("100"))
    store.set_limit("*", "per_month", D("50"))
    store.grant("own", "holder-1", D("1"), ttl=60)
    tenants = ["own", "defaulted", "free", "never-seen"] + [f"t{n}" for n in range(450)]  # more than one chunk
    many = limit_states_of(store, tenants)
    for tenant in tenants:
        assert many[tenant] == store.limit_states(tenant), tenant
    assert [s.limit.frequency for s in many["own"]] == ["per_day", "total"]
    assert many["own"][1].spent_usd == D("10.5") and many["own"][0].leased_usd > 0
    assert many["defaulted"][0].limit.default and many["defaulted"][0].spent_usd == D("0.25")
    store.remove_limit("*")
    assert limit_states_of(store, ["free"]) == {"free": []}
