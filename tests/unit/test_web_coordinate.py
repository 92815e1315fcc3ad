"""The coordinator's pages of the web application (issue 27 item 3): the catalogue, a pathway's
page, and the editor's endpoints (checking a draft as `pathways validate` does, saving it to
the pathway's file, publishing). The pathways are a copy in tmp_path (PATHWAYS_PATH): saving
writes to it."""

from __future__ import annotations

import datetime as dt
import re
import shutil

import pytest
from fastapi.testclient import TestClient

from conftest import ROOT
from pathways.access import Actor
from pathways.clock import FixedClock
from pathways.orchestration.drafts import content_hash
from pathways.orchestration.service import Runtimes, advance_one, open_store
from pathways.web import WebSettings, create_app
from test_web import csrf_of, entries, log_in
from web_setup import TODAY, seed


@pytest.fixture
def site(engine, tmp_path, monkeypatch):
    folder = tmp_path / "network"
    shutil.copytree(ROOT / "pathways", folder / "pathways")
    monkeypatch.setenv("PATHWAYS_PATH", str(folder / "pathways"))
    monkeypatch.chdir(tmp_path)
    url = engine.url.render_as_string(hide_password=False)
    seed(url)  # publishes diabetes (the first enrollment, by the admin 'setup')
    app = create_app(WebSettings(database_url=url, secret_key="k" * 40, clock=FixedClock.on(TODAY)))
    return app, engine, folder / "pathways" / "diabetes" / "pathway.yaml"


def save(client: TestClient, csrf: str, file, text: str):
    """Save ``text`` as the editor does, starting from the file as it is now."""
    return client.post("/pathways/diabetes/save", data={"csrf": csrf, "text": text, "base": content_hash(file.read_text())})


def coordinator(app) -> tuple[TestClient, str]:
    client = TestClient(app)
    log_in(client, "coord-ben")
    return client, csrf_of(client.get("/pathways/diabetes/edit").text)


def test_the_catalogue_lists_published_versions_with_who_and_when_and_drafts(site):
    app, _, file = site
    client, _ = coordinator(app)
    page = client.get("/pathways")
    assert page.status_code == 200
    row = re.search(r'<tr id="pathway-diabetes">(.*?)</tr>', page.text, re.S).group(1)
    version = re.search(r"^version: (\S+)", file.read_text(), re.M).group(1)
    assert f"{version} by setup (admin) on 2026-11-02" in row and "published" in row and "draft" not in row
    copd = re.search(r'<tr id="pathway-copd">(.*?)</tr>', page.text, re.S).group(1)
    assert "none yet" in copd and "draft: not published" in copd
    file.write_text(file.read_text().replace("title: {nl: Laboratorium", "title: {nl: Lab", 1))  # an edit on disk
    row = re.search(r'<tr id="pathway-diabetes">(.*?)</tr>', client.get("/pathways").text, re.S).group(1)
    assert "draft: not published" in row


def test_the_pathway_page_shows_diagram_steps_gates_with_citations_and_parameters_with_evidence(site):
    app, _, _ = site
    client = TestClient(app)
    log_in(client, "poh-anna")  # reading pathways is every role's
    page = client.get("/pathways/diabetes")
    assert page.status_code == 200
    assert 'id="diagram" data-source="---' in page.text and "flowchart TD" in page.text
    step = re.search(r'<tr id="step-metformine_stoppen">(.*?)</tr>', page.text, re.S).group(1)
    assert "egfr_ml_min_1_73m2 &lt; metformin_stop_egfr" in step and "kwetsbare ouderen [S]" in step
    parameter = re.search(r'<tr id="parameter-metformin_stop_egfr">(.*?)</tr>', page.text, re.S).group(1)
    assert "[P]" in parameter or "[S]" in parameter
    assert '<script src="/static/diagram.js"></script>' in page.text and "<script>" not in page.text
    assert "Edit</a>" not in page.text  # a scheduler does not edit
    assert client.get("/pathways/nonesuch").status_code == 404


def test_a_broken_draft_gets_every_problem_at_its_line_and_column_with_code_and_hint(site):
    app, _, file = site
    client, csrf = coordinator(app)
    text = file.read_text()
    lines = text.splitlines()
    number = next(i for i, line in enumerate(lines) if "stage: interventions" in line) + 1
    broken = text.replace("stage: interventions", "stage: interventiosn", 1)
    answer = client.post("/pathways/diabetes/check", data={"csrf": csrf, "text": broken})
    assert answer.status_code == 422
    body = answer.json()
    assert body["valid"] is False and body["diagram"] is None
    assert [(p["line"], p["col"], p["code"]) for p in body["problems"]] == [(number, lines[number - 1].index("interventions") + 1, "PW012")]
    assert "did you mean 'interventions'?" in body["problems"][0]["text"]
    assert body["problems"][0]["file"].endswith("diabetes/pathway.yaml")
    syntax = client.post("/pathways/diabetes/check", data={"csrf": csrf, "text": text.replace("steps:", "steps", 1)}).json()
    assert syntax["problems"][0]["code"] == "PW001" and syntax["problems"][0]["line"] > 1
    assert file.read_text() == text  # checking writes nothing


def test_a_draft_is_checked_against_the_folders_interaction_library_too(site):
    app, _, file = site
    client, csrf = coordinator(app)
    renamed = file.read_text().replace("id: metformine_starten", "id: metformine_begin", 1)  # named in _shared/interactions.yaml
    answer = client.post("/pathways/diabetes/check", data={"csrf": csrf, "text": renamed})
    assert answer.status_code == 422
    body = answer.json()
    assert body["valid"] is False and body["problems"] == [] and body["diagram"]  # the draft itself is sound: drawn
    assert {(p["file"].rsplit("/", 1)[-1], p["code"]) for p in body["elsewhere"]} == {("interactions.yaml", "PW031")}
    assert all("has no step 'metformine_starten'" in p["message"] for p in body["elsewhere"])


def test_a_valid_draft_gets_its_diagram_and_its_changes_from_the_published_version(site):
    app, _, file = site
    client, csrf = coordinator(app)
    text = file.read_text()
    same = client.post("/pathways/diabetes/check", data={"csrf": csrf, "text": text}).json()
    assert same["valid"] and same["problems"] == [] and same["changes"] == [] and same["published"].startswith("diabetes@")
    renamed = text.replace("title: {nl: Metformine stoppen bij ernstig verminderde nierfunctie",
                           "title: {nl: Metformine staken bij ernstig verminderde nierfunctie", 1)
    answer = client.post("/pathways/diabetes/check", data={"csrf": csrf, "text": renamed}).json()
    assert answer["valid"] and "Metformine staken" in answer["diagram"] and "Metformine staken" not in same["diagram"]
    assert [c["path"] for c in answer["changes"]] == ["steps.metformine_stoppen.title"]


def test_saving_writes_the_file_only_when_it_parses(site):
    app, _, file = site
    client, csrf = coordinator(app)
    text = file.read_text()
    refused = save(client, csrf, file, text.replace("steps:", "steps", 1))
    assert refused.status_code == 422 and refused.json()["saved"] is False and refused.json()["problems"][0]["code"] == "PW001"
    assert file.read_text() == text
    assert list(file.parent.glob(".pathway-*")) == []  # no temporary file left behind
    edited = text.replace("stage: interventions", "stage: interventiosn", 1)  # parses, does not validate: saved as a draft
    saved = save(client, csrf, file, edited)
    assert saved.status_code == 200 and saved.json()["saved"] is True and saved.json()["base"] == content_hash(edited)
    assert file.read_text() == edited


def test_saving_over_someone_elses_save_is_refused(site):
    app, _, file = site
    client, csrf = coordinator(app)
    text = file.read_text()
    opened = content_hash(text)
    other = text.replace("title: {nl: Metformine stoppen", "title: {nl: Metformine staken", 1)
    file.write_text(other)  # another coordinator saved meanwhile
    mine = text.replace("stage: interventions", "stage: interventiosn", 1)
    refused = client.post("/pathways/diabetes/save", data={"csrf": csrf, "text": mine, "base": opened})
    assert refused.status_code == 409 and "changed by someone else" in refused.json()["message"]
    assert file.read_text() == other
    assert client.post("/pathways/diabetes/save", data={"csrf": csrf, "text": mine}).status_code == 400  # no base: refused too


def test_publishing_is_refused_with_the_reason_when_invalid_or_the_version_is_taken(site):
    app, engine, file = site
    client, csrf = coordinator(app)
    text = file.read_text()
    already = client.post("/pathways/diabetes/publish", data={"csrf": csrf})
    assert already.status_code == 200 and "was published already" in already.text
    edited = text.replace("title: {nl: Metformine stoppen", "title: {nl: Metformine staken", 1)
    assert save(client, csrf, file, edited).json()["saved"]
    taken = client.post("/pathways/diabetes/publish", data={"csrf": csrf})
    assert taken.status_code == 409 and "is published already with other content" in taken.text
    save(client, csrf, file, edited.replace("stage: interventions", "stage: x", 1))
    invalid = client.post("/pathways/diabetes/publish", data={"csrf": csrf})
    assert invalid.status_code == 422 and "does not validate" in invalid.text and "PW012" in invalid.text
    version = re.search(r"^version: (\S+)", text, re.M).group(1)
    bumped = edited.replace(f"version: {version}", "version: 99.0.0", 1)
    save(client, csrf, file, bumped)
    done = client.post("/pathways/diabetes/publish", data={"csrf": csrf})
    assert done.status_code == 200 and "Published diabetes@99.0.0" in done.text
    published = entries(engine, action="pathway.published", pathway="diabetes")
    assert [(e["pathway_version"], e["actor"]) for e in published] == [(version, "setup"), ("99.0.0", "coord-ben")]


def test_a_scheduler_may_not_edit_check_save_or_publish_and_each_denial_is_audited(site):
    app, engine, file = site
    text = file.read_text()
    client = TestClient(app)
    log_in(client, "poh-anna")
    csrf = csrf_of(client.get("/pathways").text)
    assert client.get("/pathways/diabetes/edit").status_code == 403
    for action in ("check", "save"):
        assert client.post(f"/pathways/diabetes/{action}", data={"csrf": csrf, "text": "pathway: x"}).status_code == 403
    assert client.post("/pathways/diabetes/publish", data={"csrf": csrf}).status_code == 403
    denied = entries(engine, action="access.denied", actor="poh-anna")
    assert [(e["payload"]["permission"], e["subject"]) for e in denied] == [("pathway.publish", "diabetes")] * 4
    assert file.read_text() == text


def test_the_editors_posts_need_the_sessions_csrf_token(site):
    app, engine, file = site
    client, csrf = coordinator(app)
    text = file.read_text()
    for action in ("check", "save", "publish"):
        assert client.post(f"/pathways/diabetes/{action}", data={"csrf": "forged", "text": "pathway: x"}).status_code == 403
        assert client.post(f"/pathways/diabetes/{action}", data={"text": "pathway: x"}).status_code == 403
    assert file.read_text() == text
    assert len([e for e in entries(engine, action="access.denied") if e["payload"]["permission"] == "csrf"]) == 6
    assert client.post("/pathways/diabetes/check", data={"csrf": csrf, "text": text}).status_code == 200


def test_the_editor_page_loads_codemirror_and_its_script_from_the_app(site):
    app, _, file = site
    client, _ = coordinator(app)
    page = client.get("/pathways/diabetes/edit")
    assert page.status_code == 200 and "<script>" not in page.text
    csp = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self' 'unsafe-inline'"  # styles for Mermaid and CodeMirror only
    assert "unsafe-inline" not in client.get("/pathways").headers["content-security-policy"]
    assert '<script src="/vendor/codemirror.min.js"></script>' in page.text and '<script src="/static/editor.js"></script>' in page.text
    assert client.get("/pathways/../etc/edit").status_code == 404
    assert client.get("/vendor/anything.js").status_code == 404


# -- moving the enrollments to a newly published version ------------------------------------

MACRO = ("the macroalbuminuria threshold of {value} for men\"}\n    value: 25\n",
         "the macroalbuminuria threshold of {value} for men\"}\n    value: 1.0\n")


def publish_edited_threshold(client: TestClient, csrf: str, file) -> str:
    """Publish version 1.3.0 of the copy with the macroalbuminuria threshold for men lowered; its page."""
    text = file.read_text()
    assert text.count(MACRO[0]) == 1 and text.count("version: 1.2.0\n") == 1
    assert save(client, csrf, file, text.replace(*MACRO).replace("version: 1.2.0\n", "version: 1.3.0\n")).json()["saved"]
    return client.post("/pathways/diabetes/publish", data={"csrf": csrf}).text


def version_keys(engine) -> set[str]:
    with engine.connect() as c:
        return {key for (key,) in c.exec_driver_sql("select version_key from enrollment")}


def test_a_migration_preview_after_publishing_shows_the_change_and_apply_moves_the_enrollment(site):
    app, engine, file = site
    client, csrf = coordinator(app)
    published = publish_edited_threshold(client, csrf, file)
    assert 'href="/pathways/diabetes/migrate"' in published and "Migration preview" in published
    (old,) = version_keys(engine)
    form = client.get("/pathways/diabetes/migrate")
    assert form.status_code == 200 and "<option selected>1.3.0</option>" in form.text and f'value="{TODAY.isoformat()}"' in form.text
    shown = client.post("/pathways/diabetes/migrate", data={"csrf": csrf, "version": "1.3.0", "at": TODAY.isoformat()})
    assert shown.status_code == 200, shown.text
    assert "1 enrollment(s): 0 unchanged, 1 changed, 0 blocked" in shown.text
    change = re.search(r'<li id="changed-[^"]+">(.*?)</li></ul></li>', shown.text, re.S).group(1)
    assert "escalation verwijzing_nefroloog: closed -&gt; open" in change and "macro_acr_men = 1.0 mg/mmol" in change
    digest = re.search(r'name="preview" value="([0-9a-f]{64})"', shown.text).group(1)
    assert digest in shown.text and version_keys(engine) == {old}  # a preview moves nothing
    moved = client.post("/pathways/diabetes/migrate/apply", data={"csrf": csrf, "preview": digest})
    assert moved.status_code == 200 and "Migrated 1 enrollment(s) of diabetes to diabetes@1.3.0" in moved.text
    (new,) = version_keys(engine)
    assert new != old and new.startswith("diabetes@1.3.0")
    assert [e["payload"]["preview"] for e in entries(engine, action="enrollment.migrated")] == [digest]
    again = client.post("/pathways/diabetes/migrate/apply", data={"csrf": csrf, "preview": digest})
    assert again.status_code == 409 and f"preview {digest[:12]} was applied already" in again.text


def test_a_migration_preview_of_the_saved_draft_shows_the_change_before_publishing_and_keeps_nothing(site):
    app, engine, file = site
    client, csrf = coordinator(app)
    text = file.read_text()
    assert save(client, csrf, file, text.replace(*MACRO)).json()["saved"]  # edited, the version number not even bumped yet
    editor = client.get("/pathways/diabetes/edit")
    assert 'href="/pathways/diabetes/migrate?version=draft"' in editor.text
    form = client.get("/pathways/diabetes/migrate?version=draft")
    assert '<option value="draft" selected>' in form.text
    (old,) = version_keys(engine)
    shown = client.post("/pathways/diabetes/migrate", data={"csrf": csrf, "version": "draft", "at": TODAY.isoformat()})
    assert shown.status_code == 200, shown.text
    assert "1 enrollment(s): 0 unchanged, 1 changed, 0 blocked" in shown.text
    assert "escalation verwijzing_nefroloog: closed -&gt; open" in shown.text and "macro_acr_men = 1.0 mg/mmol" in shown.text
    assert 'id="preview-draft"' in shown.text and "/migrate/apply" not in shown.text  # nothing to apply before publishing
    with engine.connect() as c:
        assert c.exec_driver_sql("select count(*) from migration_preview").scalar() == 0  # not kept
    assert version_keys(engine) == {old}
    published_before = entries(engine, action="pathway.published")
    broken = client.post("/pathways/diabetes/migrate", data={"csrf": csrf, "version": "draft", "at": "2026-13-01"})
    assert broken.status_code == 422
    assert entries(engine, action="pathway.published") == published_before  # a draft preview publishes nothing


def test_a_stale_migration_preview_is_refused_with_the_reason_and_nothing_moves(site):
    app, engine, file = site
    client, csrf = coordinator(app)
    publish_edited_threshold(client, csrf, file)
    (old,) = version_keys(engine)
    shown = client.post("/pathways/diabetes/migrate", data={"csrf": csrf, "version": "1.3.0", "at": TODAY.isoformat()})
    digest = re.search(r'name="preview" value="([0-9a-f]{64})"', shown.text).group(1)
    enrollment = re.search(r'<li id="changed-([^"]+)">', shown.text).group(1)
    store = open_store(FixedClock.on(TODAY), engine.url.render_as_string(hide_password=False), actor=Actor(user="setup", role="admin", via="test"))
    advance_one(store, Runtimes(), enrollment, FixedClock.on(TODAY + dt.timedelta(days=7)))  # the enrollment changed since the preview
    refused = client.post("/pathways/diabetes/migrate/apply", data={"csrf": csrf, "preview": digest})
    assert refused.status_code == 409
    assert f"{enrollment} was advanced or recorded since the preview" in refused.text and "nothing migrated: make a new preview" in refused.text
    assert version_keys(engine) == {old}
    late = client.post("/pathways/diabetes/migrate", data={"csrf": csrf, "version": "1.2.0", "at": TODAY.isoformat()})
    assert late.status_code == 409 and "1.2.0 is not newer than the version the enrollments of diabetes run" in late.text


def test_a_scheduler_may_not_preview_or_apply_a_migration_and_each_denial_is_audited(site):
    app, engine, file = site
    client, csrf = coordinator(app)
    publish_edited_threshold(client, csrf, file)
    digest = re.search(r'name="preview" value="([0-9a-f]{64})"', client.post(
        "/pathways/diabetes/migrate", data={"csrf": csrf, "version": "1.3.0", "at": TODAY.isoformat()}).text).group(1)
    (old,) = version_keys(engine)
    scheduler = TestClient(app)
    log_in(scheduler, "poh-anna")
    token = csrf_of(scheduler.get("/pathways").text)
    assert "/migrate" not in scheduler.get("/pathways/diabetes").text
    assert scheduler.get("/pathways/diabetes/migrate").status_code == 403
    assert scheduler.post("/pathways/diabetes/migrate", data={"csrf": token, "version": "1.3.0", "at": TODAY.isoformat()}).status_code == 403
    assert scheduler.post("/pathways/diabetes/migrate/apply", data={"csrf": token, "preview": digest}).status_code == 403
    denied = entries(engine, action="access.denied", actor="poh-anna")
    assert [(e["payload"]["permission"], e["subject"]) for e in denied] == [("enrollment.migrate", "diabetes")] * 3
    assert version_keys(engine) == {old}
