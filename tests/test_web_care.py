"""The rest of the care team's enrollment page (issue 27, item 4): signing off an open escalation,
enrolling a patient from an uploaded file, documents as PDF, goals with a plot."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from test_web import csrf_of, entries, log_in, site, state_version  # noqa: F401 - site is a fixture

LABORATORY = {"hba1c_mmol_mol": "60", "fasting_glucose_mmol_l": "8", "egfr_ml_min_1_73m2": "25", "creatinine_umol_l": "200",
              "potassium_mmol_l": "4.5", "acr_mg_mmol": "3"}  # an eGFR of 25 opens the referral 'verwijzing_nefroloog'


def _escalated(client: TestClient, enrollment: str) -> str:
    path = f"/enrollments/{enrollment}/steps/laboratorium_start/record"
    done = client.post(path, data={"csrf": csrf_of(client.get(path).text), **{f"out.{k}": v for k, v in LABORATORY.items()}},
                       follow_redirects=False)
    assert done.status_code == 303
    return client.get(done.headers["location"]).text


def _sign_off(client: TestClient, enrollment: str, page: str, outcome: str, step: str = "verwijzing_nefroloog"):
    return client.post(f"/enrollments/{enrollment}/escalations/{step}/signoff", data={"csrf": csrf_of(page), "outcome": outcome},
                       follow_redirects=False)


def _step_row(page: str, step: str) -> str:
    return re.search(rf'<tr id="step-{step}".*?</tr>', page, re.S).group(0)


def test_an_open_escalation_is_signed_off_from_the_enrollment_page(site):
    app, enrollment, _, engine = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    page = _escalated(client, enrollment)
    assert 'action="/enrollments/%s/escalations/verwijzing_nefroloog/signoff"' % enrollment in page

    declined = _sign_off(client, enrollment, page, "niet akkoord")
    assert declined.status_code == 303
    page = client.get(declined.headers["location"]).text
    assert "Not signed off: verwijzing_nefroloog stays open" in page
    assert '<td class="status">escalated</td>' in _step_row(page, "verwijzing_nefroloog")
    assert [(e["actor"], e["payload"]["outcome"], e["payload"]["signed_off_by"], e["payload"]["via"])
            for e in entries(engine, action="signoff.declined", enrollment=enrollment)] == [("poh-anna", "niet akkoord", "poh-anna", "web")]

    agreed = _sign_off(client, enrollment, page, "akkoord")
    assert agreed.status_code == 303
    page = client.get(agreed.headers["location"]).text
    assert "Recorded verwijzing_nefroloog; the enrollment was advanced." in page
    assert 'id="escalation-verwijzing_nefroloog"' not in page
    assert '<td class="status">escalated</td>' not in _step_row(page, "verwijzing_nefroloog")
    recorded = entries(engine, action="input.recorded", subject=f"{enrollment}:verwijzing_nefroloog")
    assert [(e["actor"], e["payload"]["outcome"], e["payload"]["signed_off_by"], e["payload"]["via"]) for e in recorded] == \
        [("poh-anna", "akkoord", "poh-anna", "web")]

    version = state_version(engine, enrollment)
    again = _sign_off(client, enrollment, page, "akkoord")  # closed now: a conflict, nothing stored
    assert again.status_code == 409 and f"is not an open escalation of {enrollment} (open: none)" in again.text
    assert state_version(engine, enrollment) == version


def test_a_sign_off_with_another_outcome_or_by_an_auditor_is_refused_and_nothing_is_stored(site):
    app, enrollment, _, engine = site
    poh, auditor = TestClient(app), TestClient(app)
    log_in(poh, "poh-anna")
    log_in(auditor, "audit-cas")
    page = _escalated(poh, enrollment)
    version = state_version(engine, enrollment)

    tampered = _sign_off(poh, enrollment, page, "misschien")
    assert tampered.status_code == 422 and "outcome &#39;misschien&#39;: use akkoord or &#39;niet akkoord&#39;" in tampered.text
    auditor_page = auditor.get(f"/enrollments/{enrollment}").text
    assert "Sign off as" not in auditor_page  # no form for a role that may not record
    refused = _sign_off(auditor, enrollment, auditor_page, "akkoord")
    assert refused.status_code == 403
    assert state_version(engine, enrollment) == version
    assert entries(engine, action="signoff.declined", enrollment=enrollment) == []
    assert [e["actor"] for e in entries(engine, action="access.denied")][-1:] == ["audit-cas"]
