"""The web application (issue 27, care team): log-in, sessions, CSRF, rate limiting, role checks,
security headers, the worklist, the enrollment page and recording a step through its form."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import ROOT
from pathways.clock import FixedClock
from pathways.store import audit
from pathways.web import WebSettings, create_app
from web_setup import TODAY, password, seed


@pytest.fixture
def site(engine):
    """The seeded store on SQLite (and PostgreSQL when CI gives one) and the app on it."""
    url = engine.url.render_as_string(hide_password=False)
    enrollment = seed(url)
    clock = FixedClock.on(TODAY)
    settings = WebSettings(database_url=url, secret_key="k" * 40, clock=clock, page_size=25, prefect=False)  # no Prefect here: tests/e2e/test_web_prefect.py
    return create_app(settings), enrollment, clock, engine


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(client: TestClient, user: str, secret: str | None = None):
    page = client.get("/login")
    return client.post("/login", data={"name": user, "password": secret or password(user), "csrf": csrf_of(page.text), "next": "/worklist"},
                       follow_redirects=False)


def entries(engine, **query) -> list[dict]:
    with engine.connect() as connection:
        return list(audit.entries(connection, audit.Query(**query)))


def state_version(engine, enrollment: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("select state_version from enrollment where id = :e"), {"e": enrollment}).scalar_one()


# -- headers, log-in, sessions -----------------------------------------------------------------

def test_every_response_carries_the_security_headers(site):
    app, enrollment, _, _ = site
    client = TestClient(app)
    for response in (client.get("/login"), client.get("/static/app.css"), client.get("/nowhere"),
                     client.get(f"/enrollments/{enrollment}", follow_redirects=False)):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in client.get("/login").text  # no inline script for the CSP to allow
    assert client.get("/favicon.ico").status_code == 204  # (no 404 in the browser's console on each first page)


def test_log_in_sets_a_signed_httponly_lax_cookie_and_log_out_ends_the_session(site):
    app, _, _, engine = site
    client = TestClient(app)
    assert client.get("/worklist", follow_redirects=False).headers["location"] == "/login?next=/worklist"
    done = log_in(client, "poh-anna")
    assert done.status_code == 303 and done.headers["location"] == "/worklist"
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=28800" in cookie
    page = client.get("/worklist")
    assert page.status_code == 200 and "poh-anna (scheduler)" in page.text
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False).headers["location"] == "/login"
    assert client.get("/worklist", follow_redirects=False).status_code == 303
    assert [e["actor"] for e in entries(engine, action="login.succeeded")] == ["poh-anna"]


def test_a_tampered_session_cookie_is_no_session(site):
    app, _, _, _ = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    value = client.cookies["pathways_session"]
    client.cookies.set("pathways_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/worklist", follow_redirects=False).status_code == 303


def test_the_session_expires_after_its_lifetime_by_the_clock(site):
    app, _, clock, _ = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    clock.advance(dt.timedelta(hours=7, minutes=59))
    assert client.get("/worklist").status_code == 200
    clock.advance(dt.timedelta(minutes=1))
    assert client.get("/worklist", follow_redirects=False).headers["location"] == "/login?next=/worklist"


def test_every_post_without_the_sessions_csrf_token_is_refused_and_audited(site):
    app, enrollment, _, engine = site
    client = TestClient(app)
    client.get("/login")
    refused = client.post("/login", data={"name": "poh-anna", "password": password("poh-anna")}, follow_redirects=False)
    assert refused.status_code == 403 and "security token" in refused.text
    assert "pathways_session=" not in refused.headers.get("set-cookie", "") or "user" not in refused.text
    log_in(client, "poh-anna")
    form = client.get(f"/enrollments/{enrollment}/steps/intake_poh/record")
    data = {"out.body_weight_kg": "80", "unit.body_weight_kg": "kg", "out.systolic_bp_mmhg": "130", "out.diastolic_bp_mmhg": "80",
            "out.smoking_status": "never"}
    before = state_version(engine, enrollment)
    assert client.post(form.url.path, data={**data, "csrf": "forged"}).status_code == 403
    assert client.post(form.url.path, data=data).status_code == 403
    assert state_version(engine, enrollment) == before  # nothing stored
    denials = [e["payload"]["attempted"] for e in entries(engine, action="access.denied")]
    assert denials == ["POST /login without a valid CSRF token"] + [f"POST {form.url.path} without a valid CSRF token"] * 2


def test_failed_log_ins_are_limited_per_account_and_client_until_the_window_passes(site):
    app, _, clock, engine = site
    client = TestClient(app)
    for _ in range(5):
        assert log_in(client, "poh-anna", "wrong-password-0").status_code == 401
    blocked = log_in(client, "poh-anna")  # the right password, but too late
    assert blocked.status_code == 429 and "Too many failed log-ins" in blocked.text
    assert log_in(client, "coord-ben").status_code == 303  # another account from the same client is not blocked
    clock.advance(dt.timedelta(minutes=15))
    assert log_in(client, "poh-anna").status_code == 303
    assert len(entries(engine, action="login.failed")) == 5
    assert [e["subject"] for e in entries(engine, action="login.blocked")] == ["poh-anna"]


def test_an_unknown_account_and_a_wrong_password_get_the_same_answer(site):
    app, _, _, _ = site
    client = TestClient(app)
    unknown, wrong = log_in(client, "nobody", "whatever-password"), log_in(client, "poh-anna", "whatever-password")
    assert unknown.status_code == wrong.status_code == 401
    assert "Unknown name or wrong password." in unknown.text and "Unknown name or wrong password." in wrong.text


# -- roles -------------------------------------------------------------------------------------

def test_an_auditor_may_not_record_and_the_denial_is_audited(site):
    app, enrollment, _, engine = site
    client = TestClient(app)
    log_in(client, "audit-cas")
    path = f"/enrollments/{enrollment}/steps/intake_poh/record"
    page = client.get(path)
    assert page.status_code == 403 and "needs the permission &#39;input.record&#39;" in page.text
    posted = client.post(path, data={"csrf": csrf_of(page.text), "out.smoking_status": "never"})
    assert posted.status_code == 403
    denied = entries(engine, action="access.denied", actor="audit-cas")
    assert [(e["role"], e["payload"]["permission"], e["subject"]) for e in denied] == [("auditor", "input.record", enrollment)] * 2
    assert client.get(f"/enrollments/{enrollment}").status_code == 200  # reading the status is theirs


def test_a_disabled_account_is_logged_out_at_its_next_request(site):
    app, _, _, engine = site
    client = TestClient(app)
    log_in(client, "coord-ben")
    assert client.get("/worklist").status_code == 200
    with engine.begin() as connection:
        connection.execute(sa.text("update user_account set disabled = true where name = 'coord-ben'"))
    assert client.get("/worklist", follow_redirects=False).status_code == 303


# -- worklist and enrollment ---------------------------------------------------------------------

def test_the_worklist_filters_by_discipline_pathway_and_period_and_pages(site, tmp_path):
    app, enrollment, _, engine = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    rows = lambda html: re.findall(r'data-step="([^"]+)" data-enrollment="([^"]+)"', html)  # noqa: E731
    everything = client.get("/worklist").text
    assert rows(everything) == [("intake_poh", enrollment), ("laboratorium_start", enrollment)] or \
        rows(everything) == [("laboratorium_start", enrollment), ("intake_poh", enrollment)]
    assert [r[0] for r in rows(client.get("/worklist?discipline=poh").text)] == ["intake_poh"]
    assert [r[0] for r in rows(client.get("/worklist?discipline=laboratorium").text)] == ["laboratorium_start"]
    assert rows(client.get("/worklist?pathway=copd").text) == []
    # laboratorium_start came due with the huisarts's intake (2026-11-02), the POH's intake two weeks on
    assert [r[0] for r in rows(client.get("/worklist?since=2026-11-10").text)] == ["intake_poh"]
    assert [r[0] for r in rows(client.get("/worklist?until=2026-11-10").text)] == ["laboratorium_start"]
    ordered = rows(everything)
    assert ordered[0][0] == "laboratorium_start"  # sorted by due date: the overdue one first
    assert 'class="overdue"' in everything
    bad = client.get("/worklist?since=yesterday")
    assert bad.status_code == 400 and "from: &#39;yesterday&#39; is not a date" in bad.text
    partial = client.get("/worklist?discipline=poh", headers={"HX-Request": "true", "HX-Target": "results"})
    assert "<html" not in partial.text and [r[0] for r in rows(partial.text)] == ["intake_poh"]
    reads = entries(engine, action="patient_data.read", actor="poh-anna")
    assert reads and all(e["payload"]["enrollments"] == [enrollment] for e in reads)


def test_the_worklist_is_paged(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    seed(url)
    app = create_app(WebSettings(database_url=url, secret_key="k" * 40, clock=FixedClock.on(TODAY), page_size=1))
    client = TestClient(app)
    log_in(client, "poh-anna")
    first, second = client.get("/worklist").text, client.get("/worklist?page=2").text
    assert "2 due steps, page 1 of 2" in first and "page 2 of 2" in second
    assert re.findall(r'data-step="([^"]+)"', first) == ["laboratorium_start"]
    assert re.findall(r'data-step="([^"]+)"', second) == ["intake_poh"]


def test_the_enrollment_page_shows_steps_with_status_and_due_dates_and_is_audited(site):
    app, enrollment, _, engine = site
    client = TestClient(app)
    log_in(client, "coord-ben")
    page = client.get(f"/enrollments/{enrollment}")
    assert page.status_code == 200
    row = re.search(r'<tr id="step-intake_poh".*?</tr>', page.text, re.S).group(0)
    assert '<td class="status">due</td>' in row and "2026-11-16" in row
    huisarts = re.search(r'<tr id="step-intake_huisarts".*?</tr>', page.text, re.S).group(0)
    assert '<td class="status">done</td>' in huisarts and "2026-11-02" in huisarts
    assert client.get("/enrollments/diabetes-000000000000").status_code == 404
    read = entries(engine, action="patient_data.read", enrollment=enrollment, actor="coord-ben")
    assert [(e["patient_id"], e["payload"]["page"]) for e in read] == [("demo-dm-01", "enrollment")]


# -- recording a step ----------------------------------------------------------------------------

def test_the_form_is_made_from_the_steps_declared_outputs(site):
    app, enrollment, _, _ = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    form = client.get(f"/enrollments/{enrollment}/steps/intake_poh/record").text
    names = re.findall(r'<(?:input|select)[^>]* name="(out\.[^"]+|unit\.[^"]+)"', form)
    assert names == ["out.body_weight_kg", "unit.body_weight_kg", "out.systolic_bp_mmhg", "unit.systolic_bp_mmhg",
                     "out.diastolic_bp_mmhg", "unit.diastolic_bp_mmhg", "out.smoking_status"]
    assert 'value="mm[Hg]"' in form and "plausible 0.5-400" in form
    assert re.findall(r'<option value="([a-z]+)"', form) == ["current", "former", "never", "unknown"]
    assert client.get(f"/enrollments/{enrollment}/steps/anamnese_poh/record").status_code == 409  # not due yet


def test_a_wrong_unit_and_a_missing_field_are_shown_next_to_their_fields_and_nothing_is_stored(site):
    app, enrollment, _, engine = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    path = f"/enrollments/{enrollment}/steps/intake_poh/record"
    token = csrf_of(client.get(path).text)
    before = state_version(engine, enrollment)
    bad = client.post(path, data={"csrf": token, "out.body_weight_kg": "82", "unit.body_weight_kg": "mmol/l",
                                  "out.systolic_bp_mmhg": "138", "out.diastolic_bp_mmhg": "84", "out.hba1c_mmol_mol": "50"})
    assert bad.status_code == 422
    weight = re.search(r'<div class="field invalid" id="field-body_weight_kg">.*?</div>', bad.text, re.S).group(0)
    smoking = re.search(r'<div class="field invalid" id="field-smoking_status">.*?</div>', bad.text, re.S).group(0)
    assert "body_weight_kg:" in weight and "mmol/l" in weight
    assert "required output &#39;smoking_status&#39; of step &#39;intake_poh&#39; is missing" in smoking
    assert "&#39;hba1c_mmol_mol&#39; is not an output of step &#39;intake_poh&#39;" in bad.text  # a tampered field
    assert 'id="field-systolic_bp_mmhg"' in bad.text and 'value="138"' in bad.text  # what was typed stays
    assert state_version(engine, enrollment) == before
    assert entries(engine, action="input.recorded", enrollment=enrollment, actor="poh-anna") == []
    good = client.post(path, data={"csrf": token, "out.body_weight_kg": "82", "unit.body_weight_kg": "kg", "out.systolic_bp_mmhg": "138",
                                   "out.diastolic_bp_mmhg": "84", "out.smoking_status": "never"}, follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == f"/enrollments/{enrollment}?recorded=intake_poh"
    page = client.get(good.headers["location"]).text
    assert "Recorded intake_poh; the enrollment was advanced." in page
    assert '<td class="status">due</td>' in re.search(r'<tr id="step-anamnese_poh".*?</tr>', page, re.S).group(0)
    recorded = entries(engine, action="input.recorded", enrollment=enrollment)
    assert [(e["actor"], e["payload"]["values"], e["payload"].get("via")) for e in recorded][-1] == \
        ("poh-anna", {"body_weight_kg": {"unit": "kg", "value": 82}, "systolic_bp_mmhg": 138, "diastolic_bp_mmhg": 84,
                      "smoking_status": "never"}, "web")


def test_the_second_of_two_people_recording_the_same_step_sees_a_conflict(site):
    app, enrollment, _, engine = site
    anna, ben = TestClient(app), TestClient(app)
    log_in(anna, "poh-anna")
    log_in(ben, "coord-ben")
    path = f"/enrollments/{enrollment}/steps/intake_poh/record"
    data = {"out.body_weight_kg": "82", "unit.body_weight_kg": "kg", "out.systolic_bp_mmhg": "138", "out.diastolic_bp_mmhg": "84",
            "out.smoking_status": "never"}
    anna_token, ben_token = csrf_of(anna.get(path).text), csrf_of(ben.get(path).text)
    assert anna.post(path, data={**data, "csrf": anna_token}, follow_redirects=False).status_code == 303
    version = state_version(engine, enrollment)
    second = ben.post(path, data={**data, "out.body_weight_kg": "90", "csrf": ben_token})
    assert second.status_code == 409
    assert "Conflict: nothing was stored" in second.text and "was recorded already on 2026-11-16 by poh-anna (scheduler" in second.text
    assert state_version(engine, enrollment) == version
    assert [e["actor"] for e in entries(engine, action="input.recorded", enrollment=enrollment, subject=f"{enrollment}:intake_poh")] == ["poh-anna"]


# -- accounts from the command line --------------------------------------------------------------

def _user_add(tmp_path, *args: str, stdin: str) -> subprocess.CompletedProcess:
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "DO_NOT_TRACK": "1", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT / "src"), "PATHWAYS_IDENTITY_SECRET": "s" * 32}
    return subprocess.run([sys.executable, "-m", "pathways.cli", "user", "add", *args], input=stdin, capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)


def test_user_add_reads_the_password_from_stdin_and_stores_an_argon2_hash(tmp_path):
    done = _user_add(tmp_path, "poh-dina", "--role", "scheduler", stdin="a-long-enough-secret\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("added web account poh-dina (scheduler)")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.connect() as connection:
        (role, hashed), = connection.execute(sa.text("select role, password_hash from user_account")).all()
    assert role == "scheduler" and hashed.startswith("$argon2id$") and "a-long-enough-secret" not in hashed
    assert [e["subject"] for e in entries(engine, action="account.added")] == ["poh-dina"]
    again = _user_add(tmp_path, "poh-dina", "--role", "auditor", stdin="a-long-enough-secret\n")
    assert (again.returncode, again.stderr.strip()) == (1, "error: an account named 'poh-dina' exists already; nothing changed")
    short = _user_add(tmp_path, "poh-eva", "--role", "nurse", stdin="short\n")
    assert short.returncode == 1
    assert short.stderr.strip() == ("error: unknown role 'nurse' (roles: coordinator, scheduler, auditor, admin); "
                                    "the password has 5 characters: give at least 12; nothing changed")
    engine.dispose()


def test_user_add_is_for_admins_only(tmp_path):
    refused = subprocess.run([sys.executable, "-m", "pathways.cli", "user", "add", "x-y", "--role", "auditor"], input="a-long-enough-secret\n",
                             capture_output=True, text=True, cwd=tmp_path, timeout=120,
                             env={"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PATHWAYS_ROLE": "scheduler",
                                  "PATHWAYS_USER": "sam", "PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin",
                                  "PATHWAYS_IDENTITY_SECRET": "s" * 32, "DO_NOT_TRACK": "1"})
    assert refused.returncode == 1
    assert "may not add the web account x-y: it needs the permission 'account.manage' (roles: admin)" in refused.stderr


def test_an_escalation_opened_by_a_recorded_value_is_shown_with_its_reasons(site):
    app, enrollment, _, engine = site
    client = TestClient(app)
    log_in(client, "poh-anna")
    path = f"/enrollments/{enrollment}/steps/laboratorium_start/record"
    token = csrf_of(client.get(path).text)
    values = {"hba1c_mmol_mol": "60", "fasting_glucose_mmol_l": "8", "egfr_ml_min_1_73m2": "25", "creatinine_umol_l": "200",
              "potassium_mmol_l": "4,5", "acr_mg_mmol": "3"}  # a Dutch decimal comma is a decimal
    done = client.post(path, data={"csrf": token, **{f"out.{k}": v for k, v in values.items()}}, follow_redirects=False)
    assert done.status_code == 303
    page = client.get(done.headers["location"]).text
    escalations = re.search(r'<ul class="escalations">.*?\n</ul>', page, re.S).group(0)
    assert "(regulier, verwijzing_specialist) since 2026-11-16" in escalations
    assert "egfr_ml_min_1_73m2 &lt; ckd_refer_egfr_younger: true (egfr_ml_min_1_73m2 = 25 mL/min/{1.73_m2}, observed 2026-11-16" in escalations
    assert '<td class="status">escalated</td>' in re.search(r'<tr id="step-verwijzing_nefroloog".*?</tr>', page, re.S).group(0)
    recorded = entries(engine, action="input.recorded", subject=f"{enrollment}:laboratorium_start")
    assert recorded[-1]["payload"]["values"]["potassium_mmol_l"] == 4.5
    pages = [e["payload"]["page"] for e in entries(engine, action="patient_data.read", enrollment=enrollment, actor="poh-anna")]
    assert pages == ["record", "record", "enrollment"]  # the form, the form posted, the enrollment


def test_pathways_web_refuses_a_bad_setting_with_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pathways.cli", "web", "--port", "1"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PATHWAYS_WEB_SECURE_COOKIES": "yes",
                               "PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "DO_NOT_TRACK": "1", "PATHWAYS_IDENTITY_SECRET": "s" * 32})
    assert done.returncode == 2
    assert done.stderr.strip() == "error: PATHWAYS_WEB_SECURE_COOKIES: 'yes' is not 1 (cookies over HTTPS only) or 0"


def test_the_prefect_setting_is_1_or_0():
    from pathways.errors import SettingError
    from pathways.web.settings import from_environment

    base = {"PATHWAYS_WEB_SECRET": "w" * 40, "PATHWAYS_DATABASE_URL": "sqlite:///x.db"}
    assert from_environment(base).prefect and not from_environment({**base, "PATHWAYS_WEB_PREFECT": "0"}).prefect
    with pytest.raises(SettingError, match="PATHWAYS_WEB_PREFECT: 'yes' is not 1"):
        from_environment({**base, "PATHWAYS_WEB_PREFECT": "yes"})
