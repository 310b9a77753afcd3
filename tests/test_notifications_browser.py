"""The notifications page in a real headless Chromium (Debian's `chromium` through Playwright),
against a `tollmeter serve` process whose notifier runs every 0.1 s: an endpoint added through
the form (its secret shown once, and it is the one that signs), spend over a limit sent to the
API, the webhook refused once and retried, the delivery log showing both answers, the endpoint
turned off from the page. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil

import pytest

from tollmeter.notifications import verify_signature
from tollmeter.server.auth import create_key

from .server_support import database_for, event, wait_ready
from .test_notifications import Receiver, launch, receiver  # noqa: F401 - a fixture

pytest_plugins = ["tests.server_harness"]

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = next((path for path in (shutil.which("chromium"), shutil.which("chromium-browser")) if path), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")


def test_the_notifications_page_in_a_browser(backend, receiver, tmp_path):
    url, drop = database_for(backend)
    server = wait_ready(launch(url, {"TOLLMETER_NOTIFY_INTERVAL": "0.1", "TOLLMETER_NOTIFY_BACKOFF_BASE": "0.1",
                                     "TOLLMETER_NOTIFY_BACKOFF_JITTER": "0"}, tmp_path))
    try:
        key = create_key(server.store, "proj")[1]
        api = server.client(key)
        receiver.script = [503]
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(base_url=server.base)
                page.set_default_timeout(30_000)
                page.goto("/notifications")
                assert "/signin" in page.url
                page.fill("input[name=key]", key)
                with page.expect_navigation(url="**/notifications"):
                    page.click("button[type=submit]")
                assert page.locator("#endpoints").inner_text().count("No endpoint yet.") == 1

                page.fill("#endpoint-form input[name=url]", receiver.url)
                page.select_option("#endpoint-form select[name=format]", "json")
                page.uncheck("#endpoint-form input[value=refusals]")
                page.uncheck("#endpoint-form input[value=leak]")
                page.fill("#endpoint-form input[name=thresholds]", "100")
                page.fill("#endpoint-form input[name=description]", "ops")
                with page.expect_navigation():
                    page.click("#endpoint-form button[type=submit]")
                secret = page.locator("#secret").inner_text()
                [endpoint] = api.get("/v1/notifications/endpoints").json()["endpoints"]
                assert (endpoint["url"], endpoint["rules"], endpoint["thresholds"], endpoint["description"]) == (
                    receiver.url, ["limit"], [100], "ops")
                assert endpoint["secret_hint"] == "..." + secret[-4:]
                page.goto("/notifications")
                assert secret not in page.content()  # shown once

                assert api.put("/v1/limits/acme", json={"frequency": "per_day", "limit_usd": "0.001"}).status_code == 200
                body = json.dumps({"events": [event()]})  # $0.0028: past 100 %
                ingest = api.post("/v1/ingest", content=body, headers={"Content-Type": "application/json"})
                assert ingest.status_code == 200
                [message] = receiver.wait(1)
                assert message["type"] == "limit.threshold" and message["tenant_id"] == "acme"
                assert [r["status"] for r in receiver.requests] == [503, 200]
                assert all(verify_signature(secret, r["headers"]["Tollmeter-Signature"], r["body"])
                           for r in receiver.requests)  # the secret the page showed signs

                page.goto("/notifications")
                row = page.locator("#deliveries tbody tr").first
                cells = [c.strip() for c in row.locator("td").all_inner_texts()]
                assert cells[1].startswith("limit.threshold") and cells[2] == "acme"
                assert cells[4] == "delivered" and cells[5] == "2" and cells[6] == "503 → 200"
                assert "acme spent" in cells[3]

                with page.expect_navigation():
                    page.click(f"tr[data-endpoint='{endpoint['endpoint_id']}'] button[type=submit]")
                assert api.get("/v1/notifications/endpoints").json()["endpoints"][0]["enabled"] is False
                page.goto("/notifications")
                assert page.locator(f"tr[data-endpoint='{endpoint['endpoint_id']}'] td").nth(6).inner_text() == "off"
            finally:
                browser.close()
        api.close()
    finally:
        server.cleanup = []
        server.stop()
        drop()
