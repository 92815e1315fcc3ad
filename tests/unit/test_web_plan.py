"""The patient's personal plan in the web application (issues 27/28): the page as `pathways plan`
makes it on the app's date (bundled appointments, conflicts with their open escalation, goals
with the patient's priority), the forms that record priorities and close an escalation (PRG,
audited, all or nothing), the integrated zorgplan to download and the permission of the CLI."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from pathways.clock import FixedClock
from pathways.web import WebSettings, create_app
from test_web import csrf_of, entries, log_in
from web_setup import MM_TODAY, seed_multimorbid

PLAN = "/patients/mm-01/plan"
RULE = "metformine_bij_egfr_onder_stopgrens"
GOAL = "heartfailure.gewicht_stabiel"  # a heart-failure goal: ranked high, it comes first


@pytest.fixture
def mm(engine, tmp_path):
    """mm-01 in three pathways; the app on 2026-12-10 without Prefect."""
    url = engine.url.render_as_string(hide_password=False)
    enrollments = seed_multimorbid(url, tmp_path)
    settings = WebSettings(database_url=url, secret_key="k" * 40, clock=FixedClock.on(MM_TODAY), prefect=False)
    return create_app(settings), enrollments, engine


def client_of(app, user: str) -> TestClient:
    client = TestClient(app)
    assert log_in(client, user).status_code == 303
    return client


def section(page: str, heading: str) -> str:
    return re.search(rf"<h2>{heading}</h2>(.*?)(?=<h2>|</main>)", page, re.S).group(1)


def goal_row(page: str, goal: str = GOAL) -> str:
    return re.search(rf'<tr id="goal-{goal.replace(".", "-")}">.*?</tr>', page, re.S).group(0)


def test_the_plan_page_shows_the_bundled_appointment_the_conflict_its_escalation_and_links_each_enrollment(mm):
    app, enrollments, engine = mm
    client = client_of(app, "poh-anna")
    page = client.get(PLAN)
    assert page.status_code == 200, page.text
    text = page.text
    for enrollment in enrollments:
        assert f'href="/enrollments/{enrollment}"' in text
    # one huisarts visit for the diabetes referral and the heart-failure kidney consultation, both due on the page's date
    (combined,) = re.findall(r'<tr class="appointment combined">.*?</tr>', section(text, "Appointments"), re.S)
    assert "<td>2026-12-10</td>" in combined and "<td>huisarts</td>" in combined
    assert "diabetes: Referral to nephrology" in combined and "heartfailure: Kidney function decline - consultation" in combined
    assert "2 huisarts steps of diabetes, heartfailure fall on 2026-12-10" in combined
    conflict = re.search(rf'<tr id="conflict-{RULE}">.*?</tr>', text, re.S).group(0)
    assert "Metformin with an eGFR below the stop limit" in conflict
    assert "<li>diabetes: metformine_starten</li>" in conflict and "<li>heartfailure: laboratorium_voor_start</li>" in conflict
    assert "egfr_ml_min_1_73m2 = 25" in conflict and "consult the GP - stop metformin" in conflict
    assert "open since 2026-12-10 (regulier, huisarts_informeren)" in conflict
    assert f'action="/patients/mm-01/plan/escalations/{RULE}/resolve"' in section(text, "Open escalations")
    assert '<option value="none" selected>none</option>' in goal_row(text)
    assert 'href="/patients/mm-01/plan/zorgplan.pdf"' in text

    # the read is audited as the enrollment page's, the plan stored with its decisions (as `pathways plan` does)
    (read,) = entries(engine, action="patient_data.read", subject="mm-01:plan")
    assert (read["actor"], read["patient_id"], read["payload"]["page"], read["payload"]["at"]) == ("poh-anna", "mm-01", "plan", "2026-12-10")
    assert sorted(read["payload"]["enrollments"]) == sorted(enrollments)
    assert len(entries(engine, action="plan.escalated")) == 1

    # linked from each enrollment page and from the worklist row
    assert 'href="/patients/mm-01/plan">Personal plan</a>' in client.get(f"/enrollments/{enrollments[0]}").text
    assert 'href="/patients/demo-dm-01/plan"' in client.get("/worklist").text  # mm-01 has nothing stored as due yet


def test_priorities_recorded_through_the_form_are_shown_and_audited_and_an_unchanged_form_records_nothing(mm):
    app, _, engine = mm
    client = client_of(app, "poh-anna")
    page = client.get(PLAN).text
    saved = client.post(f"{PLAN}/priorities", data={"csrf": csrf_of(page), f"priority.{GOAL}": "1",
                                                    "priority.copd.stoppen_met_roken": "3"}, follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, f"{PLAN}?saved=priorities")
    page = client.get(saved.headers["location"]).text
    assert "The patient&#39;s goal priorities were saved." in page
    assert '<option value="1" selected>1 (high)</option>' in goal_row(page)
    assert '<option value="3" selected>3 (low)</option>' in goal_row(page, "copd.stoppen_met_roken")
    # ranked by the patient's priority: high first, low next
    assert re.findall(r'<tr id="goal-([a-z_-]+)">', page)[:2] == ["heartfailure-gewicht_stabiel", "copd-stoppen_met_roken"]
    assert [(e["actor"], e["subject"], e["payload"]["priority"]) for e in entries(engine, action="plan.priority")] == [
        ("poh-anna", f"mm-01:{GOAL}", 1), ("poh-anna", "mm-01:copd.stoppen_met_roken", 3)]

    # the whole form sent again as shown: nothing changed, nothing audited
    fields = dict(re.findall(r'<select name="(priority\.[^"]+)".*?<option value="([^"]+)" selected>', page, re.S))
    assert len(fields) == 8
    again = client.post(f"{PLAN}/priorities", data={"csrf": csrf_of(page), **fields}, follow_redirects=False)
    assert again.status_code == 303
    assert len(entries(engine, action="plan.priority")) == 2


def test_a_wrong_priority_is_shown_as_an_error_and_nothing_is_stored(mm):
    app, _, engine = mm
    client = client_of(app, "coord-ben")
    page = client.get(PLAN).text
    refused = client.post(f"{PLAN}/priorities", data={"csrf": csrf_of(page), f"priority.{GOAL}": "7",
                                                      "priority.copd.stoppen_met_roken": "1", "priority.diabetes.no_such_goal": "2"})
    assert refused.status_code == 422
    problems = re.search(r'<div id="problems" role="alert">(.*?)</div>', refused.text, re.S).group(1)
    assert re.findall(r'<p class="error">(.*?)</p>', problems) == [
        f"priority &#39;{GOAL}=7&#39;: the priority must be 1 (high), 2 (medium), 3 (low) or none, not &#39;7&#39;",
        "priority &#39;diabetes.no_such_goal=2&#39;: mm-01 has no goal &#39;diabetes.no_such_goal&#39; in their pathways; known: "
        "copd.ccq_onder_verwijsgrens, copd.stoppen_met_roken, diabetes.hba1c_kwetsbaar, diabetes.hba1c_ouder_kort, "
        "diabetes.hba1c_ouder_lang, diabetes.hba1c_standaard, heartfailure.gewicht_stabiel, heartfailure.kalium_in_bereik",
        "Nothing was stored."]
    # all or nothing: the valid one was not stored either; the form keeps what was chosen
    assert entries(engine, action="plan.priority") == []
    assert '<option value="1" selected>1 (high)</option>' in goal_row(refused.text, "copd.stoppen_met_roken")
    assert '<option value="1" selected>' not in goal_row(client.get(PLAN).text, "copd.stoppen_met_roken")


def test_an_open_plan_escalation_is_closed_through_the_form_with_a_reason(mm):
    app, _, engine = mm
    client = client_of(app, "poh-anna")
    page = client.get(PLAN).text
    action = f"{PLAN}/escalations/{RULE}/resolve"
    blank = client.post(action, data={"csrf": csrf_of(page), "reason": "  "})
    assert blank.status_code == 422 and "reason: say why the escalation is closed (kept in the audit trail)" in blank.text
    assert entries(engine, action="plan.resolved") == []
    unknown = client.post(f"{PLAN}/escalations/nsaid_bij_hartfalen/resolve", data={"csrf": csrf_of(page), "reason": "x"})
    assert unknown.status_code == 422
    assert f"no escalation of rule &#39;nsaid_bij_hartfalen&#39; is open on the plan of mm-01 (open: {RULE})" in unknown.text

    done = client.post(action, data={"csrf": csrf_of(page), "reason": "huisarts stopped metformin"}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, f"{PLAN}?saved=resolved")
    page = client.get(done.headers["location"]).text
    assert "The escalation was closed; the reason is kept in the audit trail." in page
    assert "<p>None.</p>" in section(page, "Open escalations") and f'id="conflict-{RULE}"' in page  # the conflict stands
    (resolved,) = entries(engine, action="plan.resolved")
    assert (resolved["actor"], resolved["payload"]["reason"]) == ("poh-anna", "huisarts stopped metformin")


def test_the_zorgplan_downloads_as_pdf_and_markdown_through_the_clis_function_and_is_audited(mm):
    app, _, engine = mm
    client = client_of(app, "poh-anna")
    pdf = client.get(f"{PLAN}/zorgplan.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'attachment; filename="mm-01-zorgplan-nl.pdf"'
    markdown = client.get(f"{PLAN}/zorgplan.md?lang=en")
    assert markdown.status_code == 200 and "Metformin with an eGFR below the stop limit" in markdown.text
    assert "We tell your GP about this. Open since 10 December 2026." in markdown.text
    assert [(e["actor"], e["subject"], e["payload"]["format"], e["payload"]["lang"]) for e in entries(engine, action="document.rendered")] == [
        ("poh-anna", "mm-01:zorgplan:2026-12-10", "pdf", "nl"), ("poh-anna", "mm-01:zorgplan:2026-12-10", "md", "en")]
    assert client.get(f"{PLAN}/zorgplan.docx").status_code == 404
    assert client.get(f"{PLAN}/zorgplan.pdf?lang=de").status_code == 404
    assert len(entries(engine, action="document.rendered")) == 2


def test_a_role_without_the_permission_gets_403_audited_and_no_link(mm):
    app, enrollments, engine = mm
    auditor = client_of(app, "audit-cas")
    page = auditor.get(f"/enrollments/{enrollments[0]}").text
    assert "/patients/mm-01/plan" not in page  # no link for a role that may not make the plan
    for response in (auditor.get(PLAN), auditor.get(f"{PLAN}/zorgplan.pdf"),
                     auditor.post(f"{PLAN}/priorities", data={"csrf": csrf_of(page), f"priority.{GOAL}": "1"})):
        assert response.status_code == 403
        assert "audit-cas (auditor) may not make the care plan of mm-01: it needs the permission &#39;input.record&#39;" in response.text
    denied = entries(engine, action="access.denied", actor="audit-cas")
    assert [(e["subject"], e["payload"]["permission"], e["payload"]["via"]) for e in denied] == [("mm-01", "input.record", "web")] * 3
    assert entries(engine, action="plan.priority") == [] and entries(engine, action="patient_data.read", subject="mm-01:plan") == []
    # a POST without the session's token is refused before anything
    poh = client_of(app, "poh-anna")
    assert poh.post(f"{PLAN}/priorities", data={f"priority.{GOAL}": "1"}).status_code == 403
    assert entries(engine, action="plan.priority") == []
