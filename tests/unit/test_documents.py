"""Care-plan documents and FHIR exchange: every template of every pathway rendered for a real
enrollment (a year of advances and recorded steps in a store) to Markdown, HTML (checked in
headless Chromium) and PDF (checked with pdftotext); template validation, overrides per care
network; FHIR PlanDefinition and CarePlan exports that validate and round-trip; NDJSON bulk import."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, run_cli
from pathways.access import Actor
from pathways.clock import FixedClock
from pathways.definition.documents import DOCUMENTS, LANGS
from pathways.definition.loader import validate_paths
from pathways.definition.places import Places
from pathways.facts.load import PatientFile
from pathways.facts.model import PatientFacts
from pathways.orchestration.service import Runtimes, advance_one, enroll_patient, open_store, record_step
from pathways.runtime.core import RecordError
from pathways.runtime.simulate import carried_forward
from pathways.views import documents as V
from pathways.views import fhir_export as F

START = dt.date(2025, 11, 3)

PATIENTS = {
    "diabetes": json.loads((ROOT / "examples" / "cohort-diabetes" / "demo-dm-03.json").read_text(encoding="utf-8")),
    "copd": {
        "patient": "pt-copd-doc", "demographics": {"birth_date": "1955-02-01", "sex": "female"},
        "conditions": [{"fact": "copd_diagnosis", "onset": "2019-03-01"}],
        "observations": [
            {"fact": "ccq_score", "value": 2.4, "unit": "{score}", "at": "2025-10-20"}, {"fact": "mrc_grade", "value": 2, "at": "2025-10-20"},
            {"fact": "smoking_status", "value": "current", "at": "2025-10-20"}, {"fact": "cigarettes_per_day", "value": 10, "at": "2025-10-20"},
            {"fact": "body_weight_kg", "value": 71, "unit": "kg", "at": "2025-10-20"}, {"fact": "fev1_l", "value": 1.6, "unit": "L", "at": "2025-10-20"},
            {"fact": "fev1_pct_predicted", "value": 62, "unit": "%", "at": "2025-10-20"}, {"fact": "exacerbation_with_ocs", "value": 1, "at": "2025-09-02"},
            {"fact": "disease_burden", "value": "verhoogd", "at": "2025-10-20"},
        ],
        "medications": [{"code": {"system": "atc", "code": "R03AC12", "display": "salmeterol"}, "start": "2024-01-01"}],
    },
    "heartfailure": {
        "patient": "pt-hf-doc", "demographics": {"birth_date": "1947-08-19", "sex": "male"},
        "conditions": [{"fact": "hf_diagnosis", "onset": "2020-01-01"}],
        "observations": [
            {"fact": "potassium_mmol_l", "value": 5.9, "unit": "mmol/L", "at": "2025-10-30"}, {"fact": "nyha_class", "value": 2, "at": "2025-10-30"},
            {"fact": "body_weight_kg", "value": 84, "unit": "kg", "at": "2025-10-30"}, {"fact": "systolic_bp_mmhg", "value": 128, "unit": "mm[Hg]", "at": "2025-10-30"},
        ],
    },
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One enrollment per pathway, advanced weekly for a year with due steps recorded from the
    latest known values (as `pathways simulate` does, but through the store)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATHWAYS_IDENTITY_SECRET", "test-secret")
        yield _world(tmp_path_factory.mktemp("documents"))


def _world(home: Path) -> dict:
    url = f"sqlite:///{home / 'store.db'}"
    runtimes = Runtimes()
    clock = FixedClock.on(START)
    store = open_store(clock, url, Actor("poh-1", "admin", "environment"))
    enrollments = {}
    for name, data in PATIENTS.items():
        facts = PatientFacts.model_validate(data)
        identity = {"bsn": "999911120", "name": f"Test {name}", "birth_date": facts.demographics.birth_date}
        enrollments[name] = enroll_patient(store, runtimes, name, PatientFile(facts, "facts", [], identity), "test", clock).enrollment
    for week in range(0, 62):
        clock = FixedClock.on(START + dt.timedelta(weeks=week))
        store.now = clock.now
        for name, enrollment in enrollments.items():
            advanced = advance_one(store, runtimes, enrollment, clock)
            runtime = runtimes.get(name)
            state, _ = store.load(enrollment)
            for step in [s for s, p in state.steps.items() if p.status == "due"] + list(state.escalations):
                data, _ = carried_forward(runtime, step, store.patient_facts(state.patient), clock.today())
                if name == "copd" and "ccq_score" in data:  # the patient reports a little better each time
                    data["ccq_score"] = round(max(0.0, float(data["ccq_score"]) - 0.3), 1)
                try:
                    record_step(store, runtimes, enrollment, step, data, clock, require_all=False)
                except RecordError:
                    continue
            assert advanced.enrollment == enrollment
    return {"home": home, "url": url, "store": store, "runtimes": runtimes, "enrollments": enrollments, "today": clock.today()}


def render(world, name, document, lang, fmt):
    store, runtime = world["store"], world["runtimes"].get(name)
    enrollment = world["enrollments"][name]
    state, _ = store.load(enrollment)
    context = V.build_context(runtime.loaded, runtime.evaluator, document, lang, world["today"], state=state,
                              patient_facts=store.patient_facts(state.patient), decisions=store.decisions(enrollment),
                              recorded=store.recorded_inputs(enrollment), identity=store.identity(state.patient))
    markdown = V.render_markdown(runtime.loaded, document, lang, context)
    if fmt == "md":
        return markdown, context
    html = V.to_html(markdown, context["document"]["title"], lang)
    return (html if fmt == "html" else V.to_pdf(html)), context


def test_the_year_produced_what_the_documents_describe(world):
    store = world["store"]
    copd, _ = store.load(world["enrollments"]["copd"])
    assert copd.goals and any(p.done_on for s, p in copd.steps.items() if s.startswith("controle_"))
    hf, _ = store.load(world["enrollments"]["heartfailure"])
    assert any(d.kind == "escalated" for d in store.decisions(world["enrollments"]["heartfailure"]))
    assert any(d.kind == "escalated" for d in store.decisions(world["enrollments"]["diabetes"]))


@pytest.mark.parametrize("name", list(PATIENTS))
@pytest.mark.parametrize("document", list(DOCUMENTS))
@pytest.mark.parametrize("lang", LANGS)
def test_every_template_renders_and_its_pdf_says_it(world, tmp_path, name, document, lang, pdftotext):
    markdown, context = render(world, name, document, lang, "md")
    title = DOCUMENTS[document][lang]
    assert markdown.startswith(f"# {title}" if document != "verwijsbrief" else ("# Verwijsbrief" if lang == "nl" else "# Referral letter"))
    assert "{{" not in markdown and "{%" not in markdown
    pdf, _ = render(world, name, document, lang, "pdf")
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    text = subprocess.run([pdftotext, "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert context["patient"]["id"] in flat and f"Test {name}" in flat  # pseudonym, and the name for a role that may see it
    headings = {
        ("zorgplan", "nl"): ["Uw doelen", "Wat we samen doen", "Wie doet wat", "Wanneer kijken we hoe het gaat?", "Wanneer belt u wie?", "bel 112"],
        ("zorgplan", "en"): ["Your goals", "What we do together", "Who does what", "Whom to call when"],
        ("verwijsbrief", "nl"): ["Geachte collega", "Reden", "Gegevens waarop dit berust", "Medicatie"],
        ("verwijsbrief", "en"): ["Dear colleague", "Reason", "The facts it rests on", "Medication"],
        ("evaluatieverslag", "nl"): ["Uw doelen: hoe gaat het?", "Wat u zelf aangaf", "Wat is er veranderd sinds de vorige keer?", "De volgende keer"],
        ("evaluatieverslag", "en"): ["Your goals: how is it going?", "What you reported", "What changed since last time?", "Next time"],
        ("overdracht", "nl"): ["Financiering", "Taken en planning", "Openstaande escalaties", "Wanneer wie inschakelen"],
        ("overdracht", "en"): ["Financing", "Tasks and planning", "Open escalations", "When to involve whom"],
    }[(document, lang)]
    for heading in headings:
        assert heading in flat, heading
    for goal in context["goals"]:  # (in the Markdown: in a PDF table a long title wraps across lines)
        if document in ("zorgplan", "evaluatieverslag"):
            assert goal["title"] in markdown
    if document == "verwijsbrief":
        escalation = context["escalation"]
        assert escalation is not None and " ".join(escalation["title"].split()) in flat
    if document == "evaluatieverslag" and name == "copd":
        review = context["review"]
        assert review["step"] is not None and review["proms"], "the COPD review records CCQ and MRC"
        ccq = next(p for p in review["proms"] if p["name"] == "ccq_score")
        assert ccq["previous"] is not None and ccq["latest"] != ccq["previous"]
        assert ("vorige keer" if lang == "nl" else "last time") in flat


def test_render_command_writes_md_html_and_pdf_and_audits_it(world, tmp_path):
    enrollment = world["enrollments"]["heartfailure"]
    env = {"PATHWAYS_DATABASE_URL": world["url"], "PATHWAYS_TODAY": world["today"].isoformat(), "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": ""}
    md = run_cli("render", "zorgplan", enrollment, "--format", "md", "--out", "-", env=env)
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# Individueel zorgplan: Hartfalen")
    pdf = tmp_path / "brief.pdf"
    done = run_cli("render", "verwijsbrief", enrollment, "--format", "pdf", "--out", str(pdf), "--lang", "en", env=env)
    assert done.returncode == 0 and done.stdout.strip() == f"wrote {pdf}" and pdf.read_bytes().startswith(b"%PDF-")
    # a coordinator may render, but gets no identifying data
    coordinator = run_cli("render", "zorgplan", enrollment, "--format", "md", "--out", "-", env={**env, "PATHWAYS_ROLE": "coordinator"})
    assert coordinator.returncode == 0 and "Test heartfailure" not in coordinator.stdout and "Test heartfailure" in md.stdout
    log = json.loads(run_cli("audit", "log", "--action", "document.rendered", "--json", env=env).stdout)
    assert [(e["payload"]["document"], e["payload"]["format"], e["payload"]["identifying"]) for e in log] == [
        ("zorgplan", "md", True), ("verwijsbrief", "pdf", True), ("zorgplan", "md", False)]


@pytest.fixture(scope="module")
def referral(tmp_path_factory):
    """The 82-year-old of issue 24 (demo-dm-03: man, eGFR 26 and ACR 31 on 15 October 2026),
    referred to nephrology on 20 October 2026; the letters are written on 1 December."""
    home = tmp_path_factory.mktemp("referral")
    url = f"sqlite:///{home / 'store.db'}"
    clock = FixedClock.on(dt.date(2026, 10, 20))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATHWAYS_IDENTITY_SECRET", "test-secret")
        store = open_store(clock, url, Actor("poh-1", "admin", "environment"))
        runtimes = Runtimes()
        facts = PatientFacts.model_validate(PATIENTS["diabetes"])
        enrollment = enroll_patient(store, runtimes, "diabetes", PatientFile(facts, "facts", [], None), "test", clock).enrollment
        advance_one(store, runtimes, enrollment, clock)
    env = {"PATHWAYS_DATABASE_URL": url, "PATHWAYS_TODAY": "2026-12-01", "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": ""}
    letters = {}
    for lang in LANGS:
        done = run_cli("render", "verwijsbrief", enrollment, "--format", "md", "--out", "-", "--lang", lang, env=env)
        assert done.returncode == 0, done.stderr
        letters[lang] = done.stdout
    return {"home": home, "env": env, "enrollment": enrollment, "letters": letters}


def test_a_referral_letter_writes_its_findings_as_a_clinician_does(referral):
    nl = referral["letters"]["nl"]
    reason = nl[nl.index("## Reden"):nl.index("## Gegevens waarop dit berust")]
    assert reason == (
        "## Reden\n\n"
        "Binnen het zorgpad Diabetes mellitus type 2 in de huisartsenpraktijk (diabetes 1.2.0) is aan dit criterium voldaan: "
        "Verwijzen naar internist-nefroloog (LTA chronische nierschade).\n\n"
        "- Geslacht: man\n"
        "- ACR 31 mg/mmol (15 oktober 2026), boven de grens van 25 voor macroalbuminurie bij mannen\n"
        "- Leeftijd 82 jaar, op of boven de leeftijdsgrens van 65 jaar\n"
        "- eGFR 26 ml/min/1,73m² (15 oktober 2026), onder de verwijsgrens van 30 voor 65-plussers\n\n")
    assert "| eGFR | 26 ml/min/1,73m² | 15 oktober 2026 |" in nl and "| Geslacht (administratief) | man | - |" in nl
    # no raw expression, no UCUM braces, no English coded value, not the under-65 branch
    for raw in ("egfr_ml_min_1_73m2", "kidney_referral", "ckd_", "`", "{", "}", ": true", "mL/min", "jonger dan 65"):
        assert raw not in nl, raw
    assert not re.search(r"\b(male|female|yes|no)\b", nl)
    # dated on the escalation, not on the day it is written
    assert "Datum: 20 oktober 2026  \n" in nl and "december" not in nl


def test_a_referral_letter_in_english_is_in_english(referral):
    en = referral["letters"]["en"]
    assert "Date: 20 October 2026  \n" in en and "this criterion is met: Referral to nephrology." in en
    assert "- Sex: male\n" in en
    assert "- eGFR 26 ml/min/1.73m² (15 October 2026), below the referral threshold of 30 for patients aged 65 and over\n" in en
    assert "| Sex | male | - |" in en
    for dutch in ("Geslacht", "man |", "Leeftijd", "onder de", "oktober", "{"):
        assert dutch not in en, dutch


def test_the_referral_letter_pdf_reads_as_the_markdown(referral, tmp_path, pdftotext):
    pdf = tmp_path / "brief.pdf"
    done = run_cli("render", "verwijsbrief", referral["enrollment"], "--format", "pdf", "--out", str(pdf), env=referral["env"])
    assert done.returncode == 0, done.stderr
    text = " ".join(subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout.split())
    assert "eGFR 26 ml/min/1,73m² (15 oktober 2026), onder de verwijsgrens van 30 voor 65-plussers" in text
    assert "Datum: 20 oktober 2026" in text and "egfr_ml_min_1_73m2" not in text


def test_render_bad_input(world, tmp_path):
    env = {"PATHWAYS_DATABASE_URL": world["url"], "PATHWAYS_TODAY": world["today"].isoformat(), "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": ""}
    enrollment = world["enrollments"]["copd"]
    cases = [
        (("render", "zorgplam", enrollment), 1, "error: unknown document 'zorgplam' (did you mean 'zorgplan'?)"),
        (("render", "zorgplan", "copd-000000000000"), 1, "error: unknown enrollment 'copd-000000000000'"),
        (("render", "zorgplan", enrollment, "--format", "docx"), 2, "error: --format 'docx': use one of md, html, pdf"),
        (("render", "verwijsbrief", enrollment, "--escalation", "nope"), 1, f"error: escalation 'nope' was never opened for {enrollment}"),
        (("render", "zorgplan", enrollment, "--out", str(tmp_path / "no" / "x.html")), 1, f"error: --out {tmp_path / 'no' / 'x.html'}: the folder"),
        (("render", "zorgplan", enrollment, "--format", "pdf", "--out", "-"), 2, "error: a PDF is not printed"),
    ]
    for args, code, message in cases:
        done = run_cli(*args, env=env)
        assert done.returncode == code and done.stderr.startswith(message), (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_template_problems_are_found_by_validate_with_their_place(tmp_path, monkeypatch):
    # a care network overrides the zorgplan for every pathway; a typo in it fails validation
    network = tmp_path / "network"
    network.mkdir()
    (network / "zorgplan.nl.md.j2").write_text("# {{ document.title }}\n\n{% for g in goals %}\n- {{ g.smrt }}\n{% endfor %}\n", encoding="utf-8")
    places = Places(templates=network)  # PATHWAYS_TEMPLATES, as the entry points pass it on
    assert [p.code for p in validate_paths([ROOT / "pathways"]).problems] == ["PW051"]  # not given: the network's are not looked at
    result = validate_paths([ROOT / "pathways"], places)
    problems = [p for p in result.problems if not p.is_warning]  # the COPD pathway's PW051 warning aside
    assert [p.code for p in problems] == ["PW045"] * 3
    assert all(p.location.line == 4 and "'dict object' has no attribute 'smrt'" in p.message and "did you mean 'smart'?" in p.hint for p in problems)
    # fixed, it is used instead of the shipped one
    (network / "zorgplan.nl.md.j2").write_text("# Ons zorgplan voor {{ patient.id }}\n", encoding="utf-8")
    assert [p.code for p in validate_paths([ROOT / "pathways"], places).problems] == ["PW051"]
    from pathways.definition.loader import load_pathway

    loaded = load_pathway("copd", places=places)  # rendering uses the templates it was loaded with
    context = {"patient": {"id": "p-1"}}
    assert V.render_markdown(loaded, "zorgplan", "nl", context) == "# Ons zorgplan voor p-1\n"


def test_fhir_plan_definitions_validate(tmp_path):
    from fhir.resources.R4B.bundle import Bundle

    for name in PATIENTS:
        out = tmp_path / f"{name}.json"
        done = run_cli("fhir", "export", name, "--out", str(out))
        assert done.returncode == 0, done.stderr
        bundle = Bundle.model_validate_json(out.read_text(encoding="utf-8"))
        resources = [e.resource for e in bundle.entry]
        plan = resources[0]
        from pathways.definition.loader import load_pathway

        spec = load_pathway(name).spec
        assert plan.get_resource_type() == "PlanDefinition" and plan.version == spec.version
        assert [a.get_resource_type() for a in resources[1:]] == ["ActivityDefinition"] * len(spec.steps)
        actions = {a.id: a for a in plan.action}
        gated = [s for s in spec.steps if s.gate is not None]
        for step in gated:
            action = actions[step.id.replace("_", "-")]
            assert action.condition[0].expression.expression == step.gate.text
            assert action.condition[0].expression.language == "text/x-pathways-expression"
        cited = [s for s in spec.steps if s.evidence is not None]
        assert all(actions[s.id.replace("_", "-")].documentation[0].type == "citation" for s in cited)
        escalations = [s for s in spec.steps if s.escalation is not None]
        assert all(actions[s.id.replace("_", "-")].priority in ("stat", "routine") for s in escalations)


def test_fhir_care_plan_validates_and_round_trips(world, tmp_path):
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.careplan import CarePlan

    env = {"PATHWAYS_DATABASE_URL": world["url"], "PATHWAYS_TODAY": world["today"].isoformat(), "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": ""}
    for name, enrollment in world["enrollments"].items():
        out = tmp_path / f"{enrollment}.json"
        done = run_cli("fhir", "export", enrollment, "--out", str(out), env=env)
        assert done.returncode == 0, done.stderr
        exported = json.loads(out.read_text(encoding="utf-8"))
        parsed = Bundle.model_validate(exported)
        plan_json = exported["entry"][0]["resource"]
        plan = CarePlan.model_validate(plan_json)
        # the same library reads back exactly what was written
        assert plan.model_dump(mode="json", by_alias=True, exclude_none=True) == plan_json
        assert [e.resource.model_dump(mode="json", by_alias=True, exclude_none=True) for e in parsed.entry] == [e["resource"] for e in exported["entry"]]
        state, _ = world["store"].load(enrollment)
        assert plan.subject.identifier.value == state.patient and plan.identifier[0].value == enrollment
        kinds = [e.resource.get_resource_type() for e in parsed.entry]
        assert kinds.count("Goal") == len(state.goals)
        tasks = [e.resource for e in parsed.entry if e.resource.get_resource_type() == "Task"]
        expected = [s for s, p in state.steps.items() if p.status in ("due", "gated")] + list(state.escalations)
        assert sorted(t.code.text for t in tasks) == sorted(expected)
        assert all(t.status == ("on-hold" if state.steps.get(t.code.text) and state.steps[t.code.text].status == "gated" else "ready") for t in tasks)
        text = out.read_text(encoding="utf-8")
        assert f"Test {name}" not in text and "999911120" not in text


def test_fhir_export_of_something_unknown(tmp_path):
    done = run_cli("fhir", "export", "diabetis", "--out", str(tmp_path / "x.json"), env={"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"})
    assert done.returncode == 1 and done.stderr.strip() == "error: 'diabetis' is neither a pathway nor an enrollment (did you mean 'diabetes'?)"
    assert not (tmp_path / "x.json").exists()


def test_an_export_that_would_not_validate_is_never_written(tmp_path):
    from pathways.definition.loader import load_pathway

    resources = F.plan_definition(load_pathway("copd"))
    resources[0]["date"] = "last tuesday"  # not a FHIR dateTime
    out = tmp_path / "x.json"
    with pytest.raises(F.ExportError) as info:
        F.write(out, F.bundle(resources))
    assert "PlanDefinition/copd does not validate" in str(info.value) and not out.exists()


def _ndjson_export(folder: Path) -> dict[str, list[str]]:
    """Split the two Synthea fixture bundles into a bulk-data export (one file per type)."""
    lines: dict[str, list[str]] = {}
    for bundle in ("dm_casimira.json.gz", "unitless_bp_miguel.json.gz"):
        data = json.loads(gzip.decompress((FIXTURES / "fhir" / "synthea" / bundle).read_bytes()))
        for entry in data["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] in ("Patient", "Condition", "Observation", "MedicationRequest", "Encounter"):
                if "subject" in resource and resource["subject"].get("reference", "").startswith("urn:uuid:"):
                    resource["subject"]["reference"] = "Patient/" + resource["subject"]["reference"].removeprefix("urn:uuid:")
                lines.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    for kind, rows in lines.items():
        (folder / f"{kind}.ndjson").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return lines


def test_ndjson_bulk_export_gives_the_same_facts_as_the_bundles(tmp_path):
    from pathways.facts.load import load_bulk_export, load_patient_file

    _ndjson_export(tmp_path)
    bulk = load_bulk_export(sorted(tmp_path.glob("*.ndjson")))
    assert len(bulk) == 2
    by_bundle = {load_patient_file(FIXTURES / "fhir" / "synthea" / b).facts.patient: load_patient_file(FIXTURES / "fhir" / "synthea" / b).facts
                 for b in ("dm_casimira.json.gz", "unitless_bp_miguel.json.gz")}
    for _, patient in bulk:
        assert patient.facts == by_bundle[patient.facts.patient]
