"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright: no
browser is downloaded), against a real server process: sign in, every view with non-empty
charts, sorting and filtering, the CSV download, a limit changed through the form and seen by
the API, another project's data never shown, a forged form refused. Skipped only when no
chromium is installed (`make test` and `.ci/run` install it)."""

from __future__ import annotations

import csv
import io
import shutil
from decimal import Decimal
from typing import Any

import pytest

from .server_support import running_server
from .test_dashboard import seed

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = next((path for path in (shutil.which("chromium"), shutil.which("chromium-browser")) if path), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shop():
    server = running_server("sqlite")
    api = server.project("browser")
    return server, api, seed(api)


def signed_in(browser: Any, server: Any, key: str) -> Any:
    context = browser.new_context(base_url=server.base, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto("/customers")
    assert "/signin" in page.url
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/customers")  # back where the visitor was going
    return context, page


def chart_marks(page: Any, figure: str) -> int:
    """Drawn marks (bars, line segments, dots) of one chart's series."""
    return page.locator(f"{figure} svg .series rect, {figure} svg .series path, {figure} svg .series circle").count()


def test_every_view_renders_with_charts(browser, shop) -> None:
    server, api, t = shop
    context, page = signed_in(browser, server, api.key)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/")
        assert page.locator("h1").inner_text() == "Overview"
        assert chart_marks(page, "#chart-margin") > 0
        assert chart_marks(page, "#chart-top-cost") > 0
        assert page.locator("#leaks tbody tr").count() > 0
        assert "mystery-model" in page.locator("#unpriced").inner_text()
        for bucket in ("week", "month"):
            page.select_option("select[name=bucket]", bucket)
            page.click("form.range button[type=submit]")
            page.wait_for_url(f"**bucket={bucket}**")
            assert chart_marks(page, "#chart-margin") > 0, bucket
        page.click("nav >> text=Customers")
        assert page.locator("#customers tbody tr").count() == 4
        page.click(f"#customers a:text-is('{t['acme']}')")
        page.wait_for_url(f"**/customers/{t['acme']}**")
        assert chart_marks(page, "#chart-models") > 0 and chart_marks(page, "#chart-agents") > 0
        assert page.locator("#runs tbody tr").count() > 0 and page.locator("#limits tbody tr").count() == 1
        page.click("nav >> text=Models")
        assert chart_marks(page, "#chart-models") > 0
        assert page.locator("#model-table tbody tr").count() == 2
        page.click("nav >> text=Limits")
        assert page.locator(f"#limits tr[data-tenant='{t['acme']}']").count() == 1
        page.click("nav >> text=Notifications")
        assert page.locator("#endpoints").count() == 1 and page.locator("#deliveries").count() == 1
        assert errors == []  # nothing blocked by the page's CSP, no script errors
    finally:
        context.close()


def test_sorting_filtering_and_the_csv_download(browser, shop) -> None:
    server, api, t = shop
    context, page = signed_in(browser, server, api.key)

    def tenants() -> list[str]:
        return page.locator("#customers tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tenant)")

    try:
        page.click("th a[data-sort=tenant]")  # first click: descending
        page.wait_for_url("**sort=tenant**")
        assert tenants() == sorted(t.values(), reverse=True)
        page.click("th a[data-sort=tenant]")
        page.wait_for_url("**dir=asc**")
        assert tenants() == sorted(t.values())
        page.click("th a[data-sort=cost]")
        page.wait_for_url("**sort=cost**")
        costs = api.http.get("/v1/margin", params={"group_by": "tenant"}).json()["rows"]
        assert tenants() == [r["tenant"] for r in sorted(costs, key=lambda r: (-Decimal(r["cost_usd"]), r["tenant"]))]
        page.fill("form.filter input[name=q]", "glob")
        page.click("form.filter button[type=submit]")
        page.wait_for_url("**q=glob**")
        assert tenants() == [t["globex"]]
        with page.expect_download() as download:
            page.click("#csv")
        rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
        assert [r["tenant_id"] for r in rows] == [t["globex"]]
        assert download.value.suggested_filename.startswith("customers-")
        api_row = next(r for r in costs if r["tenant"] == t["globex"])
        assert Decimal(rows[0]["cost_usd"]) == Decimal(api_row["cost_usd"])
        page.fill("form.filter input[name=q]", "")
        page.check("input[name=leaking]")
        page.click("form.filter button[type=submit]")
        page.wait_for_url("**leaking=1**")
        leaking = {leak["tenant_id"] for leak in api.http.get("/v1/leaks").json()["leaks"]}
        assert set(tenants()) == leaking
    finally:
        context.close()


def test_a_limit_changed_in_the_form_is_seen_by_the_api(browser, shop) -> None:
    server, api, t = shop
    context, page = signed_in(browser, server, api.key)
    try:
        page.goto("/limits")
        page.fill("#limit-form input[name=tenant_id]", t["initech"])
        page.select_option("#limit-form select[name=frequency]", "per_day")
        page.fill("#limit-form input[name=limit_usd]", "7.25")
        page.click("#limit-form button[type=submit]")
        assert "$7.25" in page.locator("#confirm-text").inner_text()
        assert api.http.get(f"/v1/limits/{t['initech']}").json()["limits"] == []
        page.click("#confirm")
        page.wait_for_url("**/limits?changed=**")
        assert page.locator(f"#limits tr[data-tenant='{t['initech']}'][data-frequency=per_day]").count() == 1
        assert api.http.get(f"/v1/limits/{t['initech']}").json()["limits"] == [
            {"frequency": "per_day", "limit_usd": "7.25", "default": False}]
    finally:
        context.close()


def test_another_projects_data_is_never_shown_and_a_forged_form_is_refused(browser, shop) -> None:
    server, api, t = shop
    other = server.project("browser")
    theirs = seed(other, prefix="other-")
    context, page = signed_in(browser, server, other.key)
    try:
        for path in ("/", "/customers", "/models", "/limits", f"/customers/{theirs['acme']}"):
            page.goto(path)
            body = page.content()
            for tenant in t.values():
                assert f">{tenant}<" not in body and f'"{tenant}"' not in body, (path, tenant)
        response = page.goto(f"/customers/{t['acme']}")
        assert response.status == 404
        # The browser's own session cookie goes with the request, but the CSRF token is wrong.
        forged = context.request.post("/limits", form={"tenant_id": theirs["acme"], "frequency": "per_month",
                                                      "limit_usd": "1", "confirmed": "yes", "csrf": "forged"})
        assert forged.status == 403
        assert other.http.get(f"/v1/limits/{theirs['acme']}").json()["limits"][0]["limit_usd"] == "10"
        page.click("text=Sign out")
        page.wait_for_url("**/signin")
        assert "/signin" in page.goto("/").url
    finally:
        context.close()
