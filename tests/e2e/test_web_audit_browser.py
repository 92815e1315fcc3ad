"""The auditor's journey in a real browser (Debian's Chromium through Playwright, nothing
downloaded): an auditor logs in, opens the diabetes indicators for November 2026, sees the plot,
follows the number of escalations acted on to the enrollment behind it, opens the decision and
reads why the patient was referred that day: the facts with their values and dates. The server
is the real `pathways web` on a free port (the `web` fixture, tests/conftest.py)."""

from __future__ import annotations

import re

import pytest

from web_setup import AUDIT_TODAY, Site, log_in, seed_audit

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def web_site():
    return Site(seed=seed_audit, today=AUDIT_TODAY)


def test_an_auditor_goes_from_an_indicator_to_a_patients_decision_and_its_facts(web, page, console_errors):
    from playwright.sync_api import expect

    base, enrollment = web.url, web.enrollment
    page.goto(f"{base}/audit/indicators")
    log_in(page, "audit-cas")
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
    assert [m for m in console_errors if "Content Security Policy" in m] == []
