"""The dashboard's pages over a large store: milliseconds to render each page, SQLite and
PostgreSQL; and (`--screenshots DIR`) a picture of each view for the docs.

    .venv/bin/python benchmarks/dashboard.py --events 1000000 [--sqlite PATH] [--postgres URL]
    .venv/bin/python benchmarks/dashboard.py --screenshots docs/img     (make screenshots)
    .venv/bin/python benchmarks/dashboard.py --serve 8731               (make dashboard: a sample store)

Timing: the data of benchmarks/margin.py (`--events` priced events over `--days` days ending
today, 300 tenants on plans of all six pricing models, 300 agents, 20,000 runs of which 80%
resolved; seeded the same way, reused from `--sqlite PATH` when that file holds them), plus a
default monthly limit and limits of their own for a third of the tenants. Each page is asked
for `--repeat` times through the dashboard's app in-process (routing, queries, charts and the
template: everything but the network) and the median is printed; the range is the last 30
days. Target: every page under 300 ms.

Screenshots: a small store of named customers, served by `tollmeter dashboard`'s app on
127.0.0.1 and photographed in headless chromium (Debian's, through Playwright); then the same
customers on a server's SQLite database, with webhook endpoints and the delivery log of a few
notifications, for its sign-in and notifications pages.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import margin as seeding  # noqa: E402  (benchmarks/margin.py: the same million events)
from fastapi.testclient import TestClient  # noqa: E402

from tollmeter import heap  # noqa: E402
from tollmeter.dashboard.local import HOST, create_local_app, free_port  # noqa: E402
from tollmeter.events import LLMEvent, Usage  # noqa: E402
from tollmeter.store.ledger import Ledger  # noqa: E402
from tollmeter.store.rows import event_row  # noqa: E402
from tollmeter.store.store import Store  # noqa: E402

UTC = timezone.utc
TARGET_MS = 300


def pages(store: Store, today: date) -> list[tuple[str, str]]:
    since, until = today - timedelta(days=29), today + timedelta(days=1)
    span = f"since={since.isoformat()}&until={until.isoformat()}"
    costly = Ledger(store).margin("tenant", since=since, until=until).rows
    tenant = max(costly, key=lambda r: r.cost_usd).key["tenant"] if costly else "tenant-0000"
    return [
        ("overview, by day", f"/?{span}&bucket=day"),
        ("overview, by week", f"/?{span}&bucket=week"),
        ("overview, by month", f"/?{span}&bucket=month"),
        ("customers", f"/customers?{span}"),
        ("customers, sorted by margin", f"/customers?{span}&sort=margin&dir=asc"),
        ("customers CSV", f"/customers.csv?{span}"),
        ("a customer", f"/customers/{tenant}?{span}"),
        ("models and providers", f"/models?{span}"),
        ("limits", "/limits"),
    ]


def add_limits(store: Store, tenants: int) -> None:
    store.set_limit("*", "per_month", Decimal("500"))
    for n in range(0, tenants, 3):
        store.set_limit(f"tenant-{n:04d}", "per_day", Decimal("40"))


def bench(name: str, store: Store, args: argparse.Namespace) -> None:
    print(f"\n== {name}", flush=True)
    first = args.today - timedelta(days=args.days - 1)
    have = store.count_events()
    if have == 0:
        seeding.generate(store, args, first)
        add_limits(store, args.tenants)
        have = store.count_events()
    else:
        print(f"  reusing the {have:,} events already stored")
    client = TestClient(create_local_app(store), base_url=f"http://{HOST}")
    heap.for_serving()  # as `tollmeter dashboard` and `tollmeter serve` do once started
    print(f"  {have:,} events; {'page':<30}{'median ms':>10}{'max ms':>9}{'KB':>7}   (of {args.repeat})")
    for label, path in pages(store, args.today):
        times, size = [], 0
        for _ in range(args.repeat):
            begun = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - begun) * 1000)
            assert response.status_code == 200, (path, response.status_code, response.text[:500])
            size = len(response.content)
        median = statistics.median(times)
        flag = f"   over {TARGET_MS} ms" if median > TARGET_MS else ""
        print(f"  {'':<{len(f'{have:,} events; ')}}{label:<30}{median:>10.0f}{max(times):>9.0f}{size / 1024:>7.0f}{flag}",
              flush=True)


# -- screenshots -------------------------------------------------------------------------------------

CUSTOMERS = [  # (tenant, name, plan, daily calls, model mix, agents)
    ("acme", "Acme Corp", {"name": "pro", "pricing_model": "per_seat", "seat_revenue_usd": "49"}, 90,
     ["gpt-4o-mini", "gpt-4o"], ["support-bot", "triage"]),
    ("globex", "Globex", {"name": "outcomes", "pricing_model": "per_resolution", "unit_revenue_usd": "4"}, 70,
     ["claude-sonnet-4", "claude-haiku-4"], ["analyst", "researcher"]),
    ("initech", "Initech", {"name": "metered", "pricing_model": "usage_based", "markup": "0.4"}, 60,
     ["gpt-4o", "gemini-2.5-flash"], ["writer", "editor"]),
    ("hooli", "Hooli", {"name": "starter", "pricing_model": "flat", "base_revenue_usd": "99"}, 120,
     ["claude-sonnet-4", "gpt-4o"], ["coder", "reviewer", "planner"]),
    ("umbrella", "Umbrella", {"name": "hybrid", "pricing_model": "hybrid", "base_revenue_usd": "299",
                              "included_units": 100, "unit_revenue_usd": "1.5"}, 50, ["gpt-4o-mini"], ["support-bot"]),
    ("stark", "Stark Industries", {"name": "per-ticket", "pricing_model": "per_unit", "unit_revenue_usd": "2"}, 40,
     ["claude-haiku-4", "gpt-4o-mini"], ["support-bot"]),
]
PRICES = {"gpt-4o": ("2.5", "10"), "gpt-4o-mini": ("0.15", "0.6"), "claude-sonnet-4": ("3", "15"),
          "claude-haiku-4": ("0.8", "4"), "gemini-2.5-flash": ("0.3", "2.5")}
PROVIDERS = {"gpt": "openai", "claude": "anthropic", "gemini": "google"}


def seed_named(store: Store, today: date, days: int = 45) -> None:
    """Named customers over `days` days: usage growing, hooli's coder costing more than its flat
    plan, runs with outcomes, a model nobody prices, limits."""
    rng = random.Random(11)
    ledger = Ledger(store)
    first = today - timedelta(days=days - 1)
    million = Decimal(1_000_000)
    run_n = 0
    for tenant, name, plan, daily, models, agents in CUSTOMERS:
        seats = 12 if plan["pricing_model"] == "per_seat" else None
        ledger.upsert_customer(tenant, name=name, plan=plan, seats=seats, effective_from=first)
        rows = []
        for d in range(days):
            day = first + timedelta(days=d)
            growth = 0.5 + d / days * (1.6 if tenant == "hooli" else 0.8)
            for _ in range(int(daily * growth * rng.uniform(0.7, 1.3))):
                model = rng.choice(models)
                agent = rng.choice(agents)
                heavy = tenant == "hooli" and agent == "coder"
                tokens_in = rng.randint(2_000, 60_000 if heavy else 12_000)
                tokens_out = rng.randint(100, 4_000)
                cache = rng.randint(0, tokens_in // 2) if model.startswith(("claude", "gpt-4o")) else 0
                if rng.random() < 0.35:
                    run_n += 1
                    run = f"{tenant}-{run_n:05d}"
                else:
                    run = None
                price_in, price_out = (Decimal(p) for p in PRICES[model])
                moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 86_000))
                if moment > datetime.now(UTC):
                    moment = datetime.now(UTC) - timedelta(minutes=rng.randint(1, 60))
                event = LLMEvent(provider=PROVIDERS[model.split("-")[0]], model=model, request_model=model,
                                 endpoint="chat.completions", tenant_id=tenant, agent_id=agent, run_id=run,
                                 usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out, cache_read_tokens=cache),
                                 cost_usd=(tokens_in * price_in + tokens_out * price_out) / million, priced=True,
                                 price_source="screenshot", timestamp=moment)
                rows.append(event_row(event.to_dict()))
                if run and moment < datetime.now(UTC) - timedelta(hours=1):
                    outcome = rng.choice(("resolved",) * 6 + ("escalated", "failed"))
                    rows[-1]["_resolve"] = (run, outcome, moment + timedelta(minutes=20))
        resolutions = [row.pop("_resolve") for row in rows if "_resolve" in row]
        store.add_events(rows)
        for run, outcome, moment in resolutions:
            ledger.resolve(run, outcome, tenant_id=tenant, at=moment)
    unknown = [event_row(LLMEvent(provider="acme-ai", model="acme-large-v3", request_model="acme-large-v3",
                                  endpoint="chat.completions", tenant_id="stark", agent_id="support-bot",
                                  usage=Usage(input_tokens=3000, output_tokens=200),
                                  timestamp=datetime.now(UTC) - timedelta(hours=n)).to_dict()) for n in range(1, 9)]
    store.add_events(unknown)
    store.set_limit("*", "per_month", Decimal("150"))
    store.set_limit("hooli", "per_month", Decimal("400"))
    store.set_limit("hooli", "per_day", Decimal("25"))
    store.set_limit("globex", "per_day", Decimal("15"))


def screenshots(directory: Path) -> None:
    """The views of `tollmeter dashboard` on the named customers; then, on a server (SQLite) with
    the same customers, its sign-in page and its notifications page after a few deliveries."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium")
    directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tollmeter-screenshots-"))
    today = datetime.now(UTC).date()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            local_screenshots(directory, work, today, browser)
            server_screenshots(directory, work, today, browser)
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def shoot(page: Any, target: Path, most: int = 1700) -> None:
    """The page's top `most` pixels at most (a long table: its top)."""
    height = min(most, page.evaluate("document.documentElement.scrollHeight"))
    page.screenshot(path=str(target), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": height})
    print(f"  {target}")


class Serving:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread, while in the `with`."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Serving:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def local_screenshots(directory: Path, work: Path, today: date, browser: Any) -> None:
    store = Store(work / "shots.db")
    try:
        seed_named(store, today)
        since = (today - timedelta(days=44)).isoformat()
        span = f"since={since}&until={(today + timedelta(days=1)).isoformat()}"
        views = [("overview", f"/?{span}&bucket=day"), ("customers", f"/customers?{span}"),
                 ("customer", f"/customers/hooli?{span}&bucket=week"), ("models", f"/models?{span}"),
                 ("limits", "/limits")]
        with Serving(create_local_app(store)) as served:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            for name, path in views:
                page.goto(served.base + path)
                shoot(page, directory / f"dashboard-{name}.png")
            page.goto(served.base + "/limits")
            page.fill("#limit-form input[name=tenant_id]", "hooli")
            page.fill("#limit-form input[name=limit_usd]", "600")
            with page.expect_navigation():
                page.click("#limit-form button[type=submit]")
            page.screenshot(path=str(directory / "dashboard-limit-confirm.png"))
            print(f"  {directory / 'dashboard-limit-confirm.png'}")
            page.close()
    finally:
        store.close()


#: The sample endpoints: (url, options, what the receiver answers: status codes in turn, then 200;
#: None: the connection is refused).
ENDPOINTS = [
    ("https://hooks.slack.example/services/T01/B02/billing", {
        "format": "slack", "rules": ["limit", "refusals"], "thresholds": [80, 100], "description": "#billing-alerts"},
     []),
    ("https://ops.example.com/webhooks/tollmeter", {
        "rules": ["limit", "refusals", "leak"], "thresholds": [100], "description": "on-call pager"}, [503]),
    ("https://crm.example.org/hooks/margin", {"rules": ["leak"], "description": "account managers"}, None),
]


def daily_spend(store: Store, tenant: str) -> Decimal:
    """What `tenant` spent today (UTC), after a call of $2 now (so that a midnight run has some)."""
    store.add_events([event_row(LLMEvent(
        provider="openai", model="gpt-4o", request_model="gpt-4o", endpoint="chat.completions", tenant_id=tenant,
        agent_id="support-bot", usage=Usage(input_tokens=400_000, output_tokens=100_000), cost_usd=Decimal(2),
        priced=True, price_source="screenshot", timestamp=datetime.now(UTC) - timedelta(seconds=5)).to_dict())])
    store.set_limit(tenant, "per_day", Decimal(1_000_000))
    [state] = [s for s in store.limit_states(tenant) if s.limit.frequency == "per_day"]
    return state.spent_usd


def seed_notifications(store: Store, base: Store) -> None:
    """The sample endpoints; acme past 100 % of a daily limit, stark past 80 % of one, a refusal
    burst of globex's; the notifier's rounds until each delivery is done: the pager's first
    answer is a 503 (delivered on the retry), the CRM refuses every connection (given up after 3
    attempts); then acme's limit is raised, and its thresholds are sent again as resolved. The
    receivers are an httpx transport answering as the list says (no network here); the rules,
    the signing, the outbox, the retries and the log are the server's."""
    import httpx
    from sqlalchemy import select

    from tollmeter.notifications import log
    from tollmeter.notifications.refusals import record_refusal
    from tollmeter.notifications.runner import Notifier
    from tollmeter.notifications.settings import NotifierSettings
    from tollmeter.store import schema

    scripts = {url: (list(answers) if answers is not None else None) for url, _, answers in ENDPOINTS}

    def answer(request: httpx.Request) -> httpx.Response:
        script = scripts[str(request.url)]
        if script is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(script.pop(0) if script else 200, text="ok")

    for url, options, _ in ENDPOINTS:
        log.save_endpoint(store, url=url, **options)
    acme, stark = daily_spend(store, "acme"), daily_spend(store, "stark")
    store.set_limit("acme", "per_day", (acme / Decimal("1.08")).quantize(Decimal("0.01")))
    store.set_limit("stark", "per_day", (stark / Decimal("0.9")).quantize(Decimal("0.01")))
    now = datetime.now(UTC)
    for minute in range(12):
        record_refusal(store, "globex", at=now - timedelta(minutes=minute % 4))
    settings = NotifierSettings(backoff_base=0.2, backoff_jitter=0, max_attempts=3, leak_interval=0.01)
    notifier = Notifier(base, settings, transport=httpx.MockTransport(answer))
    quiet = logging.getLogger("tollmeter.notifications")
    level, quiet.level = quiet.level, logging.ERROR  # the CRM's refusals are meant

    def settle() -> None:
        d = schema.notification_deliveries
        for _ in range(200):
            notifier.run_once()
            with base.transaction() as conn:
                if conn.execute(select(d.c.delivery_id).where(d.c.status == "pending").limit(1)).first() is None:
                    return
            time.sleep(0.1)
        raise SystemExit("the sample deliveries did not settle")

    try:
        settle()
        store.set_limit("acme", "per_day", (acme * 3).quantize(Decimal("0.01")))
        settle()
    finally:
        notifier.stop()
        quiet.setLevel(level)


def server_screenshots(directory: Path, work: Path, today: date, browser: Any) -> None:
    from tollmeter.notifications.settings import NotifierSettings
    from tollmeter.server.app import create_app
    from tollmeter.server.auth import create_key
    from tollmeter.server.settings import ServerSettings
    from tollmeter.server.state import open_store
    from tollmeter.store import migrations

    url = f"sqlite:///{work / 'server.db'}"
    base = open_store(url)
    try:
        migrations.upgrade(base.engine)
        project = base.for_project("tollgate")
        seed_named(project, today)
        key = create_key(base, "tollgate")[1]
        seed_notifications(project, base)
        app = create_app(ServerSettings(database_url=url))
        app.state.notifier_settings = NotifierSettings(enabled=False)  # the deliveries are done
        with Serving(app) as served:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.goto(served.base + "/notifications")  # to the sign-in page, and back after it
            shoot(page, directory / "dashboard-signin.png", most=460)
            page.fill("input[name=key]", key)
            with page.expect_navigation(url=served.base + "/notifications"):
                page.click("form[action='/signin'] button[type=submit]")
            shoot(page, directory / "dashboard-notifications.png")
            page.close()
    finally:
        base.close()


def serve_sample(port: int) -> None:
    """`make dashboard`: the sample customers of the screenshots, served until Ctrl-C."""
    from tollmeter.dashboard.local import serve

    work = Path(tempfile.mkdtemp(prefix="tollmeter-sample-"))
    store = Store(work / "sample.db")
    try:
        print("seeding sample customers (45 days of calls, runs, plans and limits)...", flush=True)
        seed_named(store, datetime.now(UTC).date())
        serve(store, port, announce=lambda line: print(line, flush=True))
    finally:
        store.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--today", type=date.fromisoformat, default=datetime.now(UTC).date())
    parser.add_argument("--repeat", type=int, default=5, help="requests per page (the median is printed)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sqlite", help="a SQLite file to keep (reused when it holds events)")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--postgres", default=os.environ.get("TOLLMETER_TEST_POSTGRES"), help="a PostgreSQL DSN")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    parser.add_argument("--postgres-schema", metavar="NAME", help="reuse the events of a schema kept with --keep")
    parser.add_argument("--screenshots", metavar="DIR", help="save a screenshot of each view in DIR instead")
    parser.add_argument("--serve", type=int, metavar="PORT", help="serve the screenshots' sample store instead")
    args = parser.parse_args()
    if args.serve is not None:
        serve_sample(args.serve)
        return
    if args.screenshots:
        screenshots(Path(args.screenshots))
        return
    print(f"dashboard benchmark: {args.events:,} events over {args.days} days to {args.today}, "
          f"{args.tenants} tenants, {args.runs:,} runs; Python {sys.version.split()[0]}")
    if not args.no_sqlite:
        work = None
        if args.sqlite:
            path = Path(args.sqlite)
        else:
            work = Path(tempfile.mkdtemp(prefix="tollmeter-bench-dashboard-"))
            path = work / "dashboard.db"
        store = Store(path)
        try:
            bench(f"SQLite ({path})", store, args)
        finally:
            store.close()
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
    if args.postgres and args.postgres_schema:  # a schema kept by an earlier run (--keep): reused
        store = Store(f"{args.postgres}{'&' if '?' in args.postgres else '?'}options=-csearch_path%3D"
                      f"{args.postgres_schema}")
        try:
            bench(f"PostgreSQL (schema {args.postgres_schema})", store, args)
        finally:
            store.close()
    elif args.postgres:
        url, drop = seeding.postgres_database(args.postgres, args.keep)
        store = Store(url)
        try:
            bench("PostgreSQL", store, args)
        finally:
            store.close()
            drop()


if __name__ == "__main__":
    main()
