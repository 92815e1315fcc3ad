"""The care team's journey in a real browser (Debian's Chromium through Playwright, nothing
downloaded): a POH logs in, filters the worklist (htmx), records an intake with a wrong unit and
a missing required field, sees both next to their fields, fixes them and sees the enrollment
advance. The server is the real `pathways web` on a free port, stopped by the fixture."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from web_setup import TODAY, password, seed

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    enrollment = seed(url)
    port = _free_port()
    env = {**os.environ, "PATHWAYS_DATABASE_URL": url, "PATHWAYS_TODAY": TODAY.isoformat(), "PATHWAYS_WEB_SECRET": "w" * 40,
           "PYTHONPATH": str(ROOT / "src"), "DO_NOT_TRACK": "1", "PATHWAYS_IDENTITY_SECRET": "s" * 32,
           "PREFECT_HOME": str(tmp_path / "prefect")}  # the embedded Prefect server `pathways web` keeps warm: its own database
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "pathways.cli", "web", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # until it accepts connections (not a timed assertion: a bound on waiting)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(f"pathways web did not start:\n{(tmp_path / 'web.log').read_text()[-3000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", enrollment, tmp_path / "web.log"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_a_poh_records_an_intake_through_the_form_and_sees_the_enrollment_advance(server, chromium):
    from playwright.sync_api import expect, sync_playwright

    base, enrollment, log = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            console = []
            page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
            page.goto(f"{base}/worklist")
            expect(page).to_have_url(f"{base}/login?next=/worklist")
            page.fill("#name", "poh-anna")
            page.fill("#password", password("poh-anna"))
            page.click("button[type=submit]")
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
            assert [m for m in console if "Content Security Policy" in m] == []
        finally:
            browser.close()
    written = log.read_text()
    assert "GET /worklist?discipline=poh" in written  # the log has the requests ...
    assert "smoking" not in written and "mmol" not in written  # ... and none of what was recorded
