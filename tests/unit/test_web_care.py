"""The rest of the care team's enrollment page (issue 27, item 4): signing off an open escalation,
enrolling a patient from an uploaded file, documents as PDF, goals with a plot."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from conftest import FIXTURES, ROOT
from pathways.clock import FixedClock
from pathways.web import WebSettings, create_app
from test_web import csrf_of, entries, log_in, site, state_version  # noqa: F401 - site is a fixture
from web_setup import TODAY, seed

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


# -- enrolling from an uploaded file --------------------------------------------------------------

def _counts(engine) -> tuple[int, int, int]:
    import sqlalchemy as sa

    with engine.connect() as connection:
        return tuple(connection.execute(sa.text(f"select count(*) from {table}")).scalar_one() for table in ("enrollment", "patient", "fact"))


def _upload(client: TestClient, name: str, content: bytes, pathway: str = "diabetes", patient: str = ""):
    token = csrf_of(client.get("/enroll").text)
    return client.post("/enroll", data={"csrf": token, "pathway": pathway, "patient": patient}, files={"file": (name, content)},
                       follow_redirects=False)


def test_a_patient_is_enrolled_from_an_uploaded_facts_file_or_fhir_bundle(site):
    app, _, _, engine = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    facts = (ROOT / "examples" / "cohort-diabetes" / "demo-dm-02.json").read_bytes()
    done = _upload(client, "demo-dm-02.json", facts)
    assert done.status_code == 303 and done.headers["location"].startswith("/enrollments/diabetes-")
    page = client.get(done.headers["location"]).text
    assert "Enrolled." in page and "Patient demo-dm-02" in page
    again = _upload(client, "demo-dm-02.json", facts)  # the same file again: nothing new, the same enrollment
    assert again.headers["location"].split("?")[0] == done.headers["location"].split("?")[0]
    assert "Enrolled already" in client.get(again.headers["location"]).text

    bundle = (FIXTURES / "fhir" / "synthea" / "dm_casimira.json.gz").read_bytes()
    fhir = _upload(client, "dm_casimira.json.gz", bundle, patient="pt-web-1")
    assert fhir.status_code == 303
    assert "Patient pt-web-1" in client.get(fhir.headers["location"]).text
    assert [e["actor"] for e in entries(engine, action="enrollment.created")][-2:] == ["poh-anna", "poh-anna"]


BAD_UPLOADS = [  # (file name, content, status, the problem shown)
    ("broken.json", b'{"patient": "x",\n "observations": [}', 400, "broken.json:2:19: malformed JSON: Expecting value"),
    ("deep.json", b"[" * 100 + b"]" * 100, 400, "deep.json:1:65: the JSON nests deeper than 64 levels"),
    ("notes.txt", b"{}", 400, "'notes.txt': upload a patient's facts JSON or FHIR file (.json, .json.gz or .xml"),
    ("wrong.json", b'{"patient": "x", "observations": [{"fact": "hba1c_mmol_mol"}]}', 400, "wrong.json: observations[0].at: missing: add it"),
    ("big.json", b" " * 5000 + b"{}", 413, "big.json: the file is over the 4000 bytes limit for a patient file"),
    ("huge.json", b" " * 200_000, 413, "the request is larger than the 4000 bytes a patient file may be; nothing was stored"),
]


@pytest.mark.parametrize("name, content, status, problem", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_a_bad_upload_gets_a_clear_message_its_status_and_stores_nothing(engine, name, content, status, problem):
    import html

    url = engine.url.render_as_string(hide_password=False)
    seed(url)
    app = create_app(WebSettings(database_url=url, secret_key="k" * 40, clock=FixedClock.on(TODAY), prefect=False, max_upload_bytes=4000))
    client = TestClient(app)
    log_in(client, "poh-anna")
    before = _counts(engine)
    refused = _upload(client, name, content)
    assert refused.status_code == status
    assert problem in html.unescape(refused.text)
    assert "Nothing was stored" in refused.text or "nothing was stored" in refused.text
    assert _counts(engine) == before
    assert "/tmp/" not in refused.text and "pathways-upload-" not in refused.text  # the file's name, not where it was copied


def test_enrolling_is_for_schedulers_and_admins(site):
    app, _, _, engine = site
    client = TestClient(app)
    log_in(client, "audit-cas")
    assert client.get("/enroll").status_code == 403
    assert 'href="/enroll"' not in client.get("/worklist").text


# -- documents ------------------------------------------------------------------------------------

def test_a_document_downloads_as_pdf_and_its_disclosure_is_audited(site, pdftotext, tmp_path):
    import hashlib
    import subprocess

    app, enrollment, _, engine = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    page = client.get(f"/enrollments/{enrollment}").text
    assert f'href="/enrollments/{enrollment}/documents/zorgplan.pdf"' in page
    pdf = client.get(f"/enrollments/{enrollment}/documents/zorgplan.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"] == f'attachment; filename="{enrollment}-zorgplan.pdf"'
    (tmp_path / "zorgplan.pdf").write_bytes(pdf.content)
    text = subprocess.run([pdftotext, str(tmp_path / "zorgplan.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "Individueel zorgplan: Diabetes mellitus type 2" in text and "Uw nummer bij ons: demo-dm-01" in text
    rendered = entries(engine, action="document.rendered", enrollment=enrollment)
    assert [(e["actor"], e["payload"]["document"], e["payload"]["format"], e["payload"]["sha256"]) for e in rendered] == \
        [("poh-anna", "zorgplan", "pdf", hashlib.sha256(pdf.content).hexdigest())]


def test_a_document_that_cannot_be_made_says_why_and_an_auditor_may_not_render(site):
    app, enrollment, _, engine = site
    client, auditor = TestClient(app), TestClient(app)
    log_in(client, "poh-anna")
    log_in(auditor, "audit-cas")
    letter = client.get(f"/enrollments/{enrollment}/documents/verwijsbrief.pdf")  # no referral is open
    assert letter.status_code == 409
    assert f"no escalation to refer for: {enrollment} has had none (a verwijsbrief explains an escalation)" in letter.text
    unknown = client.get(f"/enrollments/{enrollment}/documents/brief.pdf")
    assert unknown.status_code == 404 and "unknown document &#39;brief&#39;" in unknown.text
    assert auditor.get(f"/enrollments/{enrollment}/documents/zorgplan.pdf").status_code == 403
    assert "/documents/" not in auditor.get(f"/enrollments/{enrollment}").text
    assert entries(engine, action="document.rendered", enrollment=enrollment) == []


# -- goals ----------------------------------------------------------------------------------------

def test_goals_show_their_progress_as_a_small_server_side_plot(site):
    import base64
    import datetime as dt

    from pathways.access import Actor
    from pathways.orchestration.service import Runtimes, open_store, record_step

    app, enrollment, clock, engine = site
    url = engine.url.render_as_string(hide_password=False)
    store = open_store(clock, url, actor=Actor(user="setup", role="admin", via="test"))
    runtimes = Runtimes()
    for step, values in (("intake_poh", {}), ("anamnese_poh", {}), ("laboratorium_start", {"hba1c_mmol_mol": 60}), ("doelen_afspreken", {})):
        record_step(store, runtimes, enrollment, step, values, clock, require_all=False)
    client = TestClient(app)
    log_in(client, "poh-anna")
    page = client.get(f"/enrollments/{enrollment}").text
    row = re.search(r'<tr id="goal-hba1c_standaard">.*?</tr>', page, re.S).group(0)
    image = re.search(r'<img class="plot" src="data:image/png;base64,([^"]+)" alt="progress of hba1c_mmol_mol">', row)
    assert image is not None and base64.b64decode(image.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<script>" not in page and "style=" not in page and "<svg" not in page  # CSP: no inline script or style


# -- sessions and concurrent recording ------------------------------------------------------------

INTAKE = {"out.body_weight_kg": "82", "unit.body_weight_kg": "kg", "out.systolic_bp_mmhg": "138", "out.diastolic_bp_mmhg": "84",
          "out.smoking_status": "never"}


def test_a_form_posted_after_the_session_expired_goes_to_log_in_and_stores_nothing(site):
    import datetime as dt

    app, enrollment, clock, engine = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    path = f"/enrollments/{enrollment}/steps/intake_poh/record"
    token = csrf_of(client.get(path).text)
    version = state_version(engine, enrollment)
    clock.advance(dt.timedelta(hours=8))  # the session's lifetime, by the injected clock
    late = client.post(path, data={**INTAKE, "csrf": token}, follow_redirects=False)
    assert (late.status_code, late.headers["location"]) == (303, "/login")
    assert state_version(engine, enrollment) == version
    assert entries(engine, action="input.recorded", subject=f"{enrollment}:intake_poh") == []


def test_two_people_recording_the_same_step_at_the_same_moment_one_is_stored_the_other_sees_a_conflict(site, monkeypatch):
    """Both requests have read the enrollment (the same state_version) before either writes: a
    barrier in front of the store's write holds each until the other arrives. The first write
    wins; the second finds the state_version moved (StaleState) and stores nothing."""
    import threading

    from pathways.store.db import Store

    app, enrollment, _, engine = site
    anna, ben = TestClient(app), TestClient(app)
    log_in(anna, "poh-anna")
    log_in(ben, "coord-ben")
    path = f"/enrollments/{enrollment}/steps/intake_poh/record"
    tokens = {"anna": csrf_of(anna.get(path).text), "ben": csrf_of(ben.get(path).text)}
    version = state_version(engine, enrollment)
    both_read = threading.Barrier(2, timeout=30)
    apply = Store.apply

    def apply_together(self, *args, **kwargs):
        both_read.wait()  # neither writes before both have read
        return apply(self, *args, **kwargs)

    monkeypatch.setattr(Store, "apply", apply_together)
    answers: dict[str, object] = {}

    def post(name: str, client: TestClient, weight: str):
        answers[name] = client.post(path, data={**INTAKE, "out.body_weight_kg": weight, "csrf": tokens[name]}, follow_redirects=False)

    threads = [threading.Thread(target=post, args=("anna", anna, "82")), threading.Thread(target=post, args=("ben", ben, "90"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [303, 409]
    loser = next(answer for answer in answers.values() if answer.status_code == 409)
    assert "Conflict: nothing was stored" in loser.text and "changed while this was being saved" in loser.text
    assert state_version(engine, enrollment) == version + 1
    recorded = entries(engine, action="input.recorded", subject=f"{enrollment}:intake_poh")
    winner = next(name for name, answer in answers.items() if answer.status_code == 303)
    assert [(e["actor"], e["payload"]["values"]["body_weight_kg"]["value"]) for e in recorded] == \
        [({"anna": "poh-anna", "ben": "coord-ben"}[winner], {"anna": 82, "ben": 90}[winner])]
