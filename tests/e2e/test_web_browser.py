"""The care team's journey in a real browser (Debian's Chromium through Playwright, nothing
downloaded): a POH logs in, filters the worklist (htmx), records an intake with a wrong unit and
a missing required field, sees both next to their fields, fixes them and sees the enrollment
advance. The server is the real `pathways web` on a free port (the `web` fixture, tests/conftest.py)."""

from __future__ import annotations

import pytest

from web_setup import log_in

pytestmark = pytest.mark.browser


def test_a_poh_records_an_intake_through_the_form_and_sees_the_enrollment_advance(web, page, console_errors):
    from playwright.sync_api import expect

    base, enrollment = web.url, web.enrollment
    page.goto(f"{base}/worklist")
    expect(page).to_have_url(f"{base}/login?next=/worklist")
    log_in(page, "poh-anna")
    expect(page.locator("h1")).to_have_text("Worklist")
    rows = page.locator("table.worklist tbody tr[data-step]")
    expect(rows).to_have_count(2)
    # the filter updates the table in place (htmx), and the address follows it
    with page.expect_response(lambda r: "discipline=poh" in r.url and r.request.headers.get("hx-request") == "true"):
        page.select_option("select[name=discipline]", "poh")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-step", "intake_poh")
    expect(page).to_have_url(f"{base}/worklist?discipline=poh&pathway=&since=&until=")
    rows.first.locator("a.record").click()
    expect(page.locator("h1")).to_contain_text("Record:")
    page.fill("[name='out.body_weight_kg']", "82")
    page.fill("[name='unit.body_weight_kg']", "mmol/l")  # a wrong unit
    page.fill("[name='out.systolic_bp_mmhg']", "138")
    page.fill("[name='out.diastolic_bp_mmhg']", "84")  # smoking status left out: required
    page.click("button:has-text('Save')")
    expect(page.locator("#form-problems")).to_have_text("Nothing was stored: correct the fields marked below.")
    expect(page.locator("#field-body_weight_kg .field-error")).to_contain_text("mmol/l")
    expect(page.locator("#field-smoking_status .field-error")).to_have_text(
        "required output 'smoking_status' of step 'intake_poh' is missing")
    expect(page.locator("#field-systolic_bp_mmhg .field-error")).to_have_count(0)
    expect(page.locator("[name='out.systolic_bp_mmhg']")).to_have_value("138")  # what was typed stays
    page.fill("[name='unit.body_weight_kg']", "kg")
    page.select_option("[name='out.smoking_status']", "never")
    page.click("button:has-text('Save')")
    expect(page).to_have_url(f"{base}/enrollments/{enrollment}?recorded=intake_poh&advance=prefect")  # advanced through Prefect
    expect(page.locator("#notice")).to_have_text("Recorded intake_poh; the enrollment was advanced through Prefect.")
    expect(page.locator("#step-intake_poh .status")).to_have_text("done")
    expect(page.locator("#step-anamnese_poh .status")).to_have_text("due")
    assert [m for m in console_errors if "Content Security Policy" in m] == []
    written = web.log.read_text()
    assert "GET /worklist?discipline=poh" in written  # the log has the requests ...
    assert "smoking" not in written and "mmol" not in written  # ... and none of what was recorded
