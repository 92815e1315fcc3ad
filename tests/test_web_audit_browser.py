"""The auditor's journey in a real browser (Debian's Chromium through Playwright, nothing
downloaded): an auditor logs in, opens the diabetes indicators for November 2026, sees the plot,
follows the number of escalations acted on to the enrollment behind it, opens the decision and
reads why the patient was referred that day: the facts with their values and dates. The server
is the real `pathways web` on a free port (as in test_web_browser.py), stopped by the fixture."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from test_web_browser import _free_port
from web_setup import AUDIT_TODAY, password, seed_audit

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    enrollment = seed_audit(url)
    port = _free_port()
    env = {**os.environ, "PATHWAYS_DATABASE_URL": url, "PATHWAYS_TODAY": AUDIT_TODAY.isoformat(), "PATHWAYS_WEB_SECRET": "w" * 40,
           "PYTHONPATH": str(ROOT / "src"), "DO_NOT_TRACK": "1", "PATHWAYS_IDENTITY_SECRET": "s" * 32}
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "pathways.cli", "web", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # until it accepts connections (a bound on waiting, not a timed assertion)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(f"pathways web did not start:\n{(tmp_path / 'web.log').read_text()[-3000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", enrollment
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_an_auditor_goes_from_an_indicator_to_a_patients_decision_and_its_facts(server, chromium):
    from playwright.sync_api import expect, sync_playwright

    base, enrollment = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            console = []
            page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
            page.goto(f"{base}/audit/indicators")
            page.fill("#name", "audit-cas")
            page.fill("#password", password("audit-cas"))
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Quality indicators")
            page.fill("[name=period]", "2026-11")
            page.click("#indicator-form button[type=submit]")
            expect(page.locator("#indicators")).to_contain_text("median 7 days")
            plot = page.locator("img.plot").first
            expect(plot).to_be_visible()
            assert plot.evaluate("img => img.complete && img.naturalWidth > 100")  # the PNG decoded under the page's CSP
            page.click("a.drill[data-number='escalations.acted']")
            expect(page.locator("h1")).to_have_text("Escalations acted on")
            row = page.locator(f"#behind tr[data-enrollment='{enrollment}']")
            expect(row).to_have_count(1)
            row.locator("a.decision").click()
            expect(page).to_have_url(re.compile(rf"/audit/decisions/{enrollment}(:|%3A)verwijzing_nefroloog"))
            expect(page.locator("#outcome")).to_have_text("escalation.opened verwijzing_nefroloog")
            expect(page.locator("#dates")).to_have_text("2026-11-16 / 2026-11-16")
            egfr = page.locator("#facts tr[data-fact='egfr_ml_min_1_73m2']")
            expect(egfr.locator(".value")).to_have_text("25 mL/min/{1.73_m2}")
            expect(egfr.locator(".observed")).to_have_text("2026-11-16")
            expect(page.locator("#findings")).to_contain_text("below the referral threshold of 45")
            expect(page.locator("#citations")).to_contain_text("rule kidney_referral")
            assert [m for m in console if "Content Security Policy" in m] == []
        finally:
            browser.close()
