"""`pathways audit ...` as an auditor uses it, after a real cohort run through Prefect's embedded
server: verification, log filters, timelines, decisions with their Prefect run ids, indicators,
the HTML report in headless Chromium, the FHIR export; roles; identifying data; bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess

import pytest

from conftest import ROOT, dump_dom, run_cli

BSN, NAME, BORN = "999911120", "Johanna van Putten-van der Giessen", "1994-04-28"


def bundle() -> dict:
    """A FHIR R4 Bundle with identifying data (test BSN from the Nictiz examples) and DM2."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "nl-core-patient-1",
                      "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": BSN}],
                      "name": [{"text": NAME, "family": "van Putten-van der Giessen", "given": ["Johanna"]}],
                      "gender": "female", "birthDate": BORN}},
        {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/nl-core-patient-1"},
                      "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}, "onsetDateTime": "2019-05-01"}},
        {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/nl-core-patient-1"},
                      "code": {"coding": [{"system": "http://loinc.org", "code": "59261-8"}]}, "effectiveDateTime": "2026-10-20",
                      "valueQuantity": {"value": 71, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"}}},
    ]}


@pytest.fixture(scope="module")
def trail(tmp_path_factory):
    """A cohort (the four example patients and one FHIR patient with a BSN) run through Prefect,
    then a referral recorded with its dates."""
    home = tmp_path_factory.mktemp("audit")
    cohort = home / "cohort"
    shutil.copytree(ROOT / "examples" / "cohort-diabetes", cohort)
    (cohort / "nl-patient.json").write_text(json.dumps(bundle()), encoding="utf-8")
    env = {
        "PATHWAYS_DATABASE_URL": f"sqlite:///{home / 'store.db'}", "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PATHWAYS_TODAY": "2026-11-01",
        "PATHWAYS_IDENTITY_SECRET_FILE": str(home / "identity.key"), "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": "",
        "PREFECT_LOGGING_LEVEL": "DEBUG",
    }
    run = run_cli("run", "diabetes", "--cohort", str(cohort), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run_cli("audit", "log", "--action", "escalation.opened", "--json", env=env)
    escalations = {e["payload"]["step"]: e for e in json.loads(log.stdout)}
    referral = escalations["verwijzing_nefroloog"]
    data = home / "referral.json"
    data.write_text(json.dumps({"referral_date": "2026-11-03", "specialist_contact_date": "2026-11-24"}), encoding="utf-8")
    done = run_cli("record", referral["enrollment_id"], "verwijzing_nefroloog", "--data", str(data), env={**env, "PATHWAYS_TODAY": "2026-11-25"})
    assert done.returncode == 0, done.stderr
    return {"home": home, "env": env, "run": run, "escalations": escalations, "referral": referral["enrollment_id"]}


def cli(trail, *args, **extra):
    return run_cli(*args, env={**trail["env"], **extra})


def test_verify_is_intact_after_a_cohort_and_gives_an_anchor(trail):
    done = cli(trail, "audit", "verify", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["intact"] and result["entries"] == result["head_seq"] > 20
    anchored = cli(trail, "audit", "verify", "--anchor", f"{result['head_seq']}:{result['head_hash']}")
    assert anchored.returncode == 0 and anchored.stdout.startswith(f"intact: {result['entries']} entries")
    wrong = cli(trail, "audit", "verify", "--anchor", f"{result['head_seq']}:{'0' * 64}")
    assert wrong.returncode == 1 and "does not match the anchor" in wrong.stdout


def test_log_filters_and_formats(trail):
    everything = json.loads(cli(trail, "audit", "log", "--json").stdout)
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    due = json.loads(cli(trail, "audit", "log", "--action", "step.due", "--json").stdout)
    assert len(due) == 5 and {e["action"] for e in due} == {"step.due"}
    steps = json.loads(cli(trail, "audit", "log", "--action", "step.", "--json").stdout)
    assert {e["action"] for e in steps} == {"step.due", "step.done"}
    typed = json.loads(cli(trail, "audit", "log", "--action", "escalation", "--json").stdout)  # as typed: escalation.*
    assert len(typed) == 3 and {e["action"] for e in typed} == {"escalation.opened"}
    assert json.loads(cli(trail, "audit", "log", "--action", "escalation.open", "--json").stdout) == []  # a name, not a text prefix
    one = json.loads(cli(trail, "audit", "log", "--enrollment", trail["referral"], "--json").stdout)
    assert {e["enrollment_id"] for e in one} == {trail["referral"]} and len(one) >= 4
    later = json.loads(cli(trail, "audit", "log", "--since", "2026-11-02", "--json").stdout)
    assert {e["action"] for e in later} == {"input.recorded", "step.done"}
    assert json.loads(cli(trail, "audit", "log", "--until", "2026-10-31", "--json").stdout) == []
    assert json.loads(cli(trail, "audit", "log", "--actor", "nobody", "--json").stdout) == []
    csv = cli(trail, "audit", "log", "--csv", "--fields", "seq,action,subject", "--action", "step.due")
    assert csv.returncode == 0 and csv.stdout.splitlines()[0] == "seq,action,subject" and len(csv.stdout.splitlines()) == 6
    table = cli(trail, "audit", "log", "--action", "escalation.opened")
    assert "audit log: 3 entries" in table.stdout


def test_log_bad_input_is_a_clear_error(trail):
    for args, message in [
        (("--fields", "seq,actr"), "error: --fields: unknown field 'actr' (did you mean 'actor'?)"),
        (("--since", "2026-13-01"), "error: --since '2026-13-01' is not a date; write YYYY-MM-DD"),
        (("--until", "yesterday"), "error: --until 'yesterday' is not a date; write YYYY-MM-DD"),
    ]:
        done = cli(trail, "audit", "log", *args)
        assert done.returncode == 1 and done.stderr.startswith(message) and "Traceback" not in done.stderr, done.stderr
    wrong = cli(trail, "audit", "log", "--colour", "red")
    assert wrong.returncode == 2 and "No such option" in wrong.stderr and "Traceback" not in wrong.stderr
    bad = cli(trail, "audit", "indicators", "--pathway", "diabetes", "--period", "2026Q5")
    assert bad.returncode == 1 and "is not a period: use 2026Q1" in bad.stderr
    unknown = cli(trail, "audit", "indicators", "--pathway", "diabetis", "--period", "2026Q4")
    assert unknown.returncode == 1 and "no pathway 'diabetis' in the audit trail (did you mean 'diabetes'?)" in unknown.stderr


def test_timeline_tells_the_story_in_dutch_and_english(trail):
    enrollment = trail["referral"]
    nl = cli(trail, "audit", "timeline", enrollment)
    assert nl.returncode == 0, nl.stderr
    lines = nl.stdout.splitlines()
    assert lines[0].startswith("2026-11-01 ingeschreven in Diabetes mellitus type 2")
    # what a clinician writes: only the branch of the rule that held for this 82-year-old, units and codes in Dutch
    referral = ("2026-11-01 Verwijzing internist-nefroloog nodig (niet dringend, verwijzing naar de specialist): Geslacht: man; "
                "ACR 31 mg/mmol (15 oktober 2026), boven de grens van 25 voor macroalbuminurie bij mannen; "
                "Leeftijd 82 jaar, op of boven de leeftijdsgrens van 65 jaar; "
                "eGFR 26 ml/min/1,73m² (15 oktober 2026), onder de verwijsgrens van 30 voor 65-plussers  [#")
    assert any(l.startswith(referral) for l in lines), nl.stdout
    for raw in ("egfr_ml_min_1_73m2", "ckd_refer_egfr", "{1.73_m2}", "mL/min", "== \"male\"", ": true"):
        assert raw not in nl.stdout, raw
    assert any(l.startswith("2026-11-25 vastgelegd bij Verwijzing internist-nefroloog: referral_date = 2026-11-03, specialist_contact_date = 2026-11-24") for l in lines)
    assert any(l.startswith("2026-11-25 Verwijzing internist-nefroloog door huisarts") for l in lines)
    en = cli(trail, "audit", "timeline", enrollment, "--lang", "en")
    assert en.stdout.splitlines()[0].startswith("2026-11-01 enrolled in Type 2 diabetes")
    assert "Referral to nephrology needed (not urgent, referral to the specialist): Sex: male; " in en.stdout
    assert "eGFR 26 ml/min/1.73m² (15 October 2026), below the referral threshold of 30 for patients aged 65 and over  [#" in en.stdout
    missing = cli(trail, "audit", "timeline", "diabetes-000000000000")
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: unknown enrollment 'diabetes-000000000000': the audit trail in {trail['env']['PATHWAYS_DATABASE_URL']} has no entry for it"


def test_show_gives_the_decision_with_facts_versions_and_prefect_runs(trail):
    escalation = trail["escalations"]["verwijzing_nefroloog"]
    done = cli(trail, "audit", "show", escalation["subject"])
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"decision {escalation['subject']}" in text and "outcome: escalation.opened verwijzing_nefroloog" in text
    assert "facts used: " in text and "egfr_ml_min_1_73m2 = 26.0" in text
    assert "rules (defined in): " in text and "kidney_referral (diabetes@1.2.0)" in text
    # the auditor keeps the raw expressions, every branch with its outcome
    assert "condition trigger:verwijzing_nefroloog: kidney_referral" in text
    assert "egfr_ml_min_1_73m2 < ckd_refer_egfr_younger: true (egfr_ml_min_1_73m2 = 26 mL/min/{1.73_m2}, observed 2026-10-15" in text
    assert "age_years < ckd_age_boundary_years: false" in text
    assert f"pathway: diabetes 1.2.0 ({escalation['version_key']})" in text
    flow_run = escalation["payload"]["context"]["prefect_flow_run"]
    task_run = escalation["payload"]["context"]["prefect_task_run"]
    assert f"Prefect flow run: {flow_run}; task run: {task_run}" in text
    # the ids are the real runs in Prefect's own database
    database = next((trail["home"] / "prefect").rglob("*.db"))
    with sqlite3.connect(database) as connection:
        assert connection.execute("select name from task_run where id = ?", (task_run,)).fetchone()[0].startswith("advance-batch")
        assert connection.execute("select count(*) from flow_run where id = ?", (flow_run,)).fetchone()[0] == 1
    assert cli(trail, "audit", "show", "nope").returncode == 1


def test_indicators_from_the_trail(trail):
    done = cli(trail, "audit", "indicators", "--pathway", "diabetes", "--period", "2026Q4", "--json", PATHWAYS_TODAY="2026-11-25")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["period"] == {"label": "2026Q4", "start": "2026-10-01", "end": "2026-12-31"}
    assert data["escalation_to_action_days"] == {"escalations": 3, "acted": 1, "open": 2, "median_days": 24, "days": [24]}
    assert data["referral_to_specialist_days"]["median_days"] == 21  # 2026-11-03 -> 2026-11-24
    assert data["referral_to_specialist_days"]["without_recorded_contact"] == 1  # the consultation
    text = cli(trail, "audit", "indicators", "--pathway", "diabetes", "--period", "2026Q4").stdout
    assert "escalation trigger -> action: median 24 days (1 acted, 2 open)" in text


def test_fhir_export_validates_and_round_trips(trail, tmp_path):
    from fhir.resources.R4B.bundle import Bundle

    out = tmp_path / "audit.json"
    done = cli(trail, "audit", "export", "--fhir", str(out))
    assert done.returncode == 0, done.stderr
    entries = json.loads(cli(trail, "audit", "log", "--json").stdout)
    decisions = [e for e in entries if e["action"].split(".")[0] in ("step", "escalation", "goal", "indication")]
    parsed = Bundle.model_validate_json(out.read_text(encoding="utf-8"))
    kinds = [e.resource.get_resource_type() for e in parsed.entry]
    assert kinds.count("AuditEvent") == len(entries) and kinds.count("Provenance") == len(decisions)
    assert done.stdout.strip() == f"wrote {out}: {len(entries)} AuditEvent, {len(decisions)} Provenance"
    text = out.read_text(encoding="utf-8")
    assert BSN not in text and NAME not in text and BORN not in text
    nd = tmp_path / "audit.ndjson"
    assert cli(trail, "audit", "export", "--fhir", str(nd), "--ndjson", "--enrollment", trail["referral"]).returncode == 0
    lines = nd.read_text(encoding="utf-8").splitlines()
    assert lines and all(json.loads(l)["resourceType"] in ("AuditEvent", "Provenance") for l in lines)


def test_no_identifying_data_in_prefect_or_logs_and_bsn_only_as_hmac(trail):
    home = trail["home"]
    for path in (home / "prefect").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (BSN, NAME, "van Putten", BORN):
                assert secret.encode() not in data, f"{secret} found in {path}"
    output = trail["run"].stdout + trail["run"].stderr
    for secret in (BSN, NAME, "van Putten", BORN):
        assert secret not in output
    key = (home / "identity.key").read_bytes().strip()
    assert oct((home / "identity.key").stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(home / "store.db") as connection:
        rows = connection.execute("select bsn_hmac, bsn, name from patient_identity").fetchall()
        assert rows == [(hmac.new(key, BSN.encode(), hashlib.sha256).hexdigest(), None, NAME)]
        dump = "\n".join(connection.iterdump())
    assert BSN not in dump  # the BSN itself is nowhere in the store
    shown = cli(trail, "patient", rows and json.loads(cli(trail, "audit", "log", "--action", "identity.stored", "--json").stdout)[0]["patient_id"])
    assert shown.returncode == 0 and "BSN: HMAC " in shown.stdout and BSN not in shown.stdout


def test_roles(trail, tmp_path):
    before = len(json.loads(cli(trail, "audit", "log", "--json").stdout))
    enrollment = trail["referral"]
    patient = json.loads(cli(trail, "audit", "log", "--enrollment", enrollment, "--json").stdout)[0]["patient_id"]
    cases = [
        ("coordinator", ("audit", "log"), "audit.read"),
        ("coordinator", ("patient", patient), "identity.read"),
        ("scheduler", ("publish", "diabetes"), "pathway.publish"),
        ("auditor", ("advance", enrollment), "enrollment.write"),
        ("auditor", ("enroll", "pt-x", "--pathway", "diabetes", "--facts", str(ROOT / "examples/cohort-diabetes/demo-dm-01.json")), "enrollment.write"),
        ("auditor", ("record", enrollment, "jaarcontrole", "--data", str(tmp_path / "x.json")), "input.record"),
    ]
    for role, args, permission in cases:
        done = cli(trail, *args, PATHWAYS_ROLE=role, PATHWAYS_USER=f"{role}-1")
        assert done.returncode == 1, (role, args, done.stdout)
        assert f"error: access denied: {role}-1 ({role}) may not " in done.stderr and f"'{permission}'" in done.stderr
    trail_after = json.loads(cli(trail, "audit", "log", "--json").stdout)
    denied = [e for e in trail_after[before:] if e["action"] == "access.denied"]
    assert [(e["actor"], e["payload"]["permission"]) for e in denied] == [(f"{r}-1", p) for r, _, p in cases]
    assert [e["action"] for e in trail_after[before:] if e["action"] != "config.changed"] == ["access.denied"] * len(cases)
    # auditors read; coordinators publish (already published: nothing new)
    assert cli(trail, "audit", "verify", PATHWAYS_ROLE="auditor").returncode == 0
    published = cli(trail, "publish", "diabetes", PATHWAYS_ROLE="coordinator")
    assert published.returncode == 0 and published.stdout.startswith("already published: diabetes@1.2.0#")
    # a token file names user and role; a bad one is a clear error
    token = tmp_path / "token"
    token.write_text("user: auditor-7\nrole: auditor\n", encoding="utf-8")
    token.chmod(0o644)
    loose = cli(trail, "audit", "verify", PATHWAYS_TOKEN_FILE=str(token))
    assert loose.returncode == 2 and f"{token}: the token file may be read by others (mode 0o644); run: chmod 600 {token}" in loose.stderr
    token.chmod(0o600)
    assert cli(trail, "audit", "verify", PATHWAYS_TOKEN_FILE=str(token)).returncode == 0
    token.write_text("user: x\nrole: superuser\n", encoding="utf-8")
    bad = cli(trail, "audit", "verify", PATHWAYS_TOKEN_FILE=str(token))
    assert bad.returncode == 2 and f"{token}: unknown role 'superuser' (roles: coordinator, scheduler, auditor, admin)" in bad.stderr


def test_report_for_an_unknown_enrollment_writes_nothing(trail, tmp_path):
    out = tmp_path / "r.html"
    done = cli(trail, "audit", "report", "diabetes-000000000000", "--html", str(out))
    assert done.returncode == 1 and "unknown enrollment 'diabetes-000000000000'" in done.stderr and not out.exists()
    done = cli(trail, "audit", "report", "--pathway", "diabetes", "--html", str(out))
    assert done.returncode == 2 and not out.exists()


@pytest.mark.browser
def test_report_renders_in_a_headless_browser(trail, tmp_path, chromium):
    pages = {"enrollment": (trail["referral"],), "pathway": ("--pathway", "diabetes", "--period", "2026Q4")}
    for name, args in pages.items():
        page = tmp_path / f"{name}.html"
        done = cli(trail, "audit", "report", *args, "--html", str(page), PATHWAYS_TODAY="2026-11-25")
        assert done.returncode == 0, done.stderr
        html = page.read_text(encoding="utf-8")
        assert 'src="http' not in html and "<link" not in html  # no external script, image or stylesheet
        run = dump_dom(chromium, page, tmp_path / "profile")
        dom = run.stdout
        assert 'data-rendered="yes"' in dom, run.stderr[-2000:]
        assert "Keten intact / chain intact" in dom
        assert "Verwijzing internist-nefroloog nodig" in dom and "egfr_ml_min_1_73m2" in dom
        assert "flowchart-verwijzing_nefroloog-" in dom  # the diagram of the version used, rendered
        assert 'data-plot="days"' in dom and "escalation -&gt; action" in dom
        assert "BSN" not in dom and "van Putten" not in dom


def test_audit_commands_never_import_prefect_or_the_rules_engine(trail, tmp_path):
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pathways.cli import app\n"
        "runner = CliRunner()\n"
        "for args in (['audit', 'verify'], ['audit', 'log', '--json'], ['audit', 'indicators', '--pathway', 'diabetes', '--period', '2026Q4']):\n"
        "    result = runner.invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'durable', 'durable_rules_engine', 'fastapi'}))\n"
    )
    done = subprocess.run([__import__("sys").executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **trail["env"]})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
