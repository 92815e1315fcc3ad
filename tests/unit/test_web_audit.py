"""The auditors' pages of the web application (issue 27 item 5): search, timeline, the decision
page, indicators with drill-down, chain verification, log search and CSV export; auditors and
admins only, every read of a patient's data and every denial audited."""

from __future__ import annotations

import csv
import io
import re
import sqlite3

import pytest
from fastapi.testclient import TestClient

from pathways.clock import FixedClock
from pathways.store import audit
from pathways.store.connect import make_engine
from pathways.web import WebSettings, create_app
from test_web import csrf_of, log_in
from web_setup import ADMIN, AUDIT_TODAY, seed_audit

KEY = "{e}:verwijzing_nefroloog:2026-11-16:escalated"
ROUTES = ("/audit", "/audit/enrollments/{e}", "/audit/decisions/" + KEY, "/audit/indicators?pathway=diabetes&period=2026-11",
          "/audit/indicators/behind?pathway=diabetes&period=2026-11&number=escalations.acted", "/audit/verify", "/audit/log?action=step.",
          "/audit/log.csv")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("audit") / "seeded.db"
    return path, seed_audit(f"sqlite:///{path}")


@pytest.fixture
def site(seeded, tmp_path):
    """A copy of the seeded store (each test writes its own audit entries) and the app on it."""
    path = tmp_path / "store.db"
    with sqlite3.connect(seeded[0]) as source, sqlite3.connect(path) as target:  # the backup API: what is in the WAL too
        source.backup(target)
    url = f"sqlite:///{path}"
    app = create_app(WebSettings(database_url=url, secret_key="k" * 40, clock=FixedClock.on(AUDIT_TODAY)))
    engine = make_engine(url)
    yield app, seeded[1], engine
    engine.dispose()


def entries(engine, **query) -> list[dict]:
    with engine.connect() as connection:
        return list(audit.entries(connection, audit.Query(**query)))


def auditor(app) -> TestClient:
    client = TestClient(app)
    assert log_in(client, "audit-cas").status_code == 303
    return client


def reads(engine, page: str) -> list[dict]:
    return [e for e in entries(engine, action="patient_data.read") if e["payload"]["page"] == page]


def test_an_enrollment_id_leads_to_its_timeline_and_a_patient_id_to_their_enrollments(site):
    app, enrollment, engine = site
    client = auditor(app)
    form = client.get("/audit")
    assert form.status_code == 200 and 'name="id"' in form.text and 'href="/audit">Audit</a>' in form.text
    found = client.get("/audit", params={"id": enrollment}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/audit/enrollments/{enrollment}"
    patient = entries(engine, action="enrollment.created")[0]["patient_id"]
    listed = client.get("/audit", params={"id": patient})
    assert listed.status_code == 200 and f'<a href="/audit/enrollments/{enrollment}">{enrollment}</a></td><td>diabetes</td>' in listed.text
    unknown = client.get("/audit", params={"id": "nobody-123"})
    assert unknown.status_code == 404 and "no enrollment or pseudonymous patient &#39;nobody-123&#39;" in unknown.text
    [read] = reads(engine, "audit search")
    assert (read["actor"], read["patient_id"], read["payload"]["enrollments"]) == ("audit-cas", patient, [enrollment])


def test_the_timeline_tells_the_story_with_links_to_each_decision_and_is_audited(site):
    app, enrollment, engine = site
    client = auditor(app)
    page = client.get(f"/audit/enrollments/{enrollment}")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-seq="\d+" data-action="([^"]+)">\s*<td>([\d-]+)</td>\s*<td>([^<]*)</td>', page.text)
    assert ("escalation.opened", "2026-11-16") in [(a, d) for a, d, _ in rows]
    assert any(a == "step.done" and d == "2026-11-23" and t == "Referral to nephrology by general practitioner" for a, d, t in rows), [r for r in rows if r[1] == "2026-11-23"]
    assert f'href="/audit/decisions/{KEY.format(e=enrollment).replace(":", "%3A")}">why</a>' in page.text
    [read] = reads(engine, "audit timeline")
    assert (read["enrollment_id"], read["subject"]) == (enrollment, enrollment)
    assert client.get("/audit/enrollments/diabetes-000000000000").status_code == 404


def test_the_decision_page_says_why_the_patient_was_referred_on_that_date(site):
    app, enrollment, engine = site
    client = auditor(app)
    key = KEY.format(e=enrollment)
    page = client.get(f"/audit/decisions/{key}")
    assert page.status_code == 200, page.text
    html = page.text
    assert '<dd id="outcome">escalation.opened verwijzing_nefroloog</dd>' in html
    assert '<dd id="dates">2026-11-16 / 2026-11-16</dd>' in html
    assert re.search(r'<dd id="version">diabetes 1\.2\.0 \(diabetes@1\.2\.0#[0-9a-f]+\)</dd>', html), html
    assert "pathway.yaml (pathway)" in re.search(r'<dd id="files">(.*?)</dd>', html).group(1)
    assert "<tr><td>kidney_referral</td><td>pathway.yaml (diabetes@1.2.0)</td></tr>" in html  # the rule, and the file that defined it
    assert "<td><code>kidney_referral</code></td>" in html
    facts = dict(re.findall(r'<tr data-fact="([^"]+)"><td>[^<]+</td><td class="value">([^<]+)</td><td class="observed">([^<]+)</td>', html)
                 and [(f, (v, o)) for f, v, o in re.findall(r'<tr data-fact="([^"]+)"><td>[^<]+</td><td class="value">([^<]+)</td><td class="observed">([^<]+)</td>', html)])
    assert facts["egfr_ml_min_1_73m2"] == ("25 mL/min/{1.73_m2}", "2026-11-16")
    assert facts["sex"] == ("male", "-")
    citations = re.search(r'<table class="citations".*?</table>', html, re.S).group(0)
    assert "<td>step verwijzing_nefroloog</td>" in citations and "<td>rule kidney_referral</td>" in citations
    assert "<td>parameter ckd_refer_egfr_younger</td>" in citations and "verwijscriteria" in citations
    assert '<dd id="flow-run">-</dd>' in html and '<dd id="task-run">-</dd>' in html  # recorded outside Prefect here
    assert "action</dt><dd>verwijzing_specialist" in html
    assert "egfr_ml_min_1_73m2 &lt; ckd_refer_egfr_younger: true" in html  # the reasons as evaluated
    [read] = reads(engine, "audit decision")
    assert (read["subject"], read["enrollment_id"]) == (key, enrollment)
    number = re.search(rf'<dd id="decision-key">{re.escape(key)} \(id (\d+)\)</dd>', html).group(1)
    assert f'<dd id="decision-key">{key} (id {number})</dd>' in client.get(f"/audit/decisions/{number}").text  # by id, as `audit show`
    missing = client.get(f"/audit/decisions/{enrollment}:nothing:2026-01-01:due")
    assert missing.status_code == 404 and "unknown decision" in missing.text


def test_indicators_show_numbers_a_plot_and_drill_down_to_enrollments_and_decisions(site):
    app, enrollment, engine = site
    client = auditor(app)
    page = client.get("/audit/indicators", params={"pathway": "diabetes", "period": "2026-11"})
    assert page.status_code == 200, page.text
    table = re.search(r'<table class="indicators".*?</table>', page.text, re.S).group(0)
    assert "median 7 days" in table  # trigger 2026-11-16 -> recorded 2026-11-23, and the specialist contact as well
    link = re.search(r'<a class="drill" data-number="escalations.acted" href="([^"]+)">1</a>', table).group(1).replace("&amp;", "&")
    assert 'data-number="referrals.with_contact"' in table and 'data-number="escalations.open"' not in table  # 0: no link
    assert re.search(r'<img class="plot" src="data:image/png;base64,[A-Za-z0-9+/=]{200,}" alt="plot: days">', page.text)
    assert reads(engine, "audit indicator drill-down") == []  # aggregates only, until a number is opened
    behind = client.get(link)
    assert behind.status_code == 200 and "Escalations acted on" in behind.text
    decision = re.search(r'<a class="decision" href="([^"]+)">', behind.text).group(1)
    assert decision == "/audit/decisions/" + KEY.format(e=enrollment).replace(":", "%3A")
    assert client.get(decision).status_code == 200
    [read] = reads(engine, "audit indicator drill-down")
    assert read["payload"]["enrollments"] == [enrollment] and read["payload"]["number"] == "escalations.acted"
    empty = client.get("/audit/indicators", params={"pathway": "diabetes", "period": "2026-01"})
    assert "No plot: nothing judged in this period yet." in empty.text and 'class="drill"' not in empty.text


def test_indicator_input_mistakes_are_named(site):
    app, _, _ = site
    client = auditor(app)
    bad_period = client.get("/audit/indicators", params={"pathway": "diabetes", "period": "november"})
    assert bad_period.status_code == 400 and "&#39;november&#39; is not a period: use 2026Q1" in bad_period.text
    unknown = client.get("/audit/indicators", params={"pathway": "diabetis", "period": "2026"})
    assert unknown.status_code == 404 and "no pathway &#39;diabetis&#39; in the audit trail (did you mean &#39;diabetes&#39;?)" in unknown.text
    number = client.get("/audit/indicators/behind", params={"pathway": "diabetes", "period": "2026", "number": "everything"})
    assert number.status_code == 400 and "is not one of the indicators" in number.text


def test_verification_shows_the_head_to_keep_and_checks_an_anchor(site):
    app, _, engine = site
    client = auditor(app)
    page = client.get("/audit/verify")
    assert page.status_code == 200 and 'id="status">Intact:' in page.text
    head = re.search(r'<pre class="anchor" id="head">(\d+):([0-9a-f]{64})</pre>', page.text)
    with engine.connect() as connection:
        result = audit.verify(connection)
    assert (int(head[1]), head[2]) == (result.head_seq, result.head_hash)
    anchored = client.get("/audit/verify", params={"anchor": f"{head[1]}:{head[2]}"})
    assert "and the anchor matches" in anchored.text
    rewritten = client.get("/audit/verify", params={"anchor": f"{head[1]}:{'0' * 64}"})
    assert f"BROKEN at entry {head[1]}" in rewritten.text and "the chain was rewritten" in rewritten.text
    malformed = client.get("/audit/verify", params={"anchor": "yesterday"})
    assert malformed.status_code == 400 and "is not SEQ:HASH" in malformed.text


def test_log_search_matches_actions_as_typed_and_exports_csv(site):
    app, enrollment, engine = site
    client = auditor(app)
    escalations = client.get("/audit/log", params={"action": "escalation"})
    assert set(re.findall(r'<tr data-action="([^"]+)">', escalations.text)) == {"escalation.opened"}
    steps = client.get("/audit/log", params={"action": "step.done", "enrollment": enrollment})
    assert re.findall(r'<tr data-action="([^"]+)">', steps.text) == ["step.done"] * 3
    prefix = client.get("/audit/log", params={"action": "step."})
    assert set(re.findall(r'<tr data-action="([^"]+)">', prefix.text)) >= {"step.due", "step.done", "step.gated"}
    assert client.get("/audit/log", params={"since": "16-11-2026"}).status_code == 400
    link = re.search(r'<a id="csv" href="([^"]+)">', escalations.text).group(1).replace("&amp;", "&")
    exported = client.get(link)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"] == 'attachment; filename="audit-log-20261130-120000.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["action"] for r in rows] == ["escalation.opened"]
    assert rows[0]["enrollment_id"] == enrollment and '"action": "verwijzing_specialist"' in rows[0]["payload"]
    pages = [e["payload"]["page"] for e in entries(engine, action="patient_data.read")]
    assert pages.count("audit log") == 3 and pages.count("audit log export") == 1


@pytest.mark.parametrize("user", ["poh-anna", "coord-ben"])
def test_other_roles_are_refused_every_audit_page_and_each_denial_is_audited(site, user):
    app, enrollment, engine = site
    client = TestClient(app)
    log_in(client, user)
    for route in ROUTES:
        refused = client.get(route.format(e=enrollment))
        assert refused.status_code == 403 and "needs the permission &#39;audit.read&#39;" in refused.text, route
    denied = entries(engine, action="access.denied", actor=user)
    assert [e["payload"]["permission"] for e in denied] == ["audit.read"] * len(ROUTES)
    assert entries(engine, action="patient_data.read", actor=user) == []  # nothing was read
    assert 'href="/audit"' not in client.get("/worklist").text  # and no link to pages they may not open


def test_an_admin_may_read_the_audit_pages(site):
    app, enrollment, _ = site
    client = TestClient(app)
    log_in(client, ADMIN[0], ADMIN[1])
    for route in ROUTES:
        assert client.get(route.format(e=enrollment)).status_code == 200, route


def test_audit_pages_need_a_log_in(site):
    app, enrollment, _ = site
    client = TestClient(app)
    page = client.get(f"/audit/enrollments/{enrollment}", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == f"/login?next=/audit/enrollments/{enrollment}"
    assert csrf_of(client.get("/login").text)
