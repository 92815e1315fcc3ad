"""One integrated zorgplan per patient (nl at B1 level, en; Markdown and PDF) with the
appointments as bundled, and the FHIR R4 export of one patient-level CarePlan addressing all the
patient's conditions with the per-pathway CarePlans as its parts, validated before writing
(issue 28 item 3): through the real `pathways plan` command."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import mm01_on_metformin, run_cli


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan-documents")
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp / 'store.db'}", "PREFECT_HOME": str(tmp / "prefect"), "DO_NOT_TRACK": "1",
           "PATHWAYS_TODAY": "2026-12-03", "PATHWAYS_ROLE": "admin"}
    file, _ = mm01_on_metformin(tmp)
    for pathway in ("diabetes", "copd", "heartfailure"):
        done = run_cli("enroll", "mm-01", "--pathway", pathway, "--facts", str(file), "--from", "reviews", env=env)
        assert done.returncode == 0, done.stderr
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return tmp, env, json.loads(done.stdout)


def rendered(tmp) -> list[tuple]:
    with sqlite3.connect(tmp / "store.db") as c:
        return c.execute("select subject, payload from audit_entry where action = 'document.rendered' order by seq").fetchall()


def test_the_zorgplan_in_dutch_shows_the_bundled_appointments_the_conflict_and_the_goals_in_plain_words(enrolled):
    tmp, env, plan = enrolled
    out = tmp / "zorgplan.md"
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--document", str(out), env=env)
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Mijn zorgplan\n") and "Gemaakt op 10 december 2026." in text
    # the GP visit bundles a step of diabetes and one of heart failure: one appointment, said so
    gp = next(a for a in plan["appointments"] if a["discipline"] == "huisarts")
    assert len({s["pathway"] for s in gp["steps"]}) == 2
    assert ("### 10 december 2026: bij de huisarts\n\n"
            "Eén afspraak voor Diabetes mellitus type 2 in de huisartsenpraktijk en Hartfalen in de eerste lijn.\n") in text
    assert text.count("### ") == len(plan["appointments"])
    steps = sum(len(a["steps"]) for a in plan["appointments"])
    assert f"Samen gepland: {steps} onderdelen in {len(plan['appointments'])} afspraken." in text
    assert "We meten één keer: Lichaamsgewicht, eGFR, Kalium (serum)." in text  # the heart-failure control's quantities
    assert "- **Metformine bij een eGFR onder de stopgrens.** Dit raakt: Metformine starten" in text
    assert "- Gestopt met roken (COPD in de huisartsenpraktijk). Hoe gaat het: nog afspreken." in text
    assert "hba1c_target" not in text and "after agreement" not in text  # no parameter names, no English
    (subject, payload), *_ = rendered(tmp)
    assert subject == "mm-01:zorgplan:2026-12-10"
    assert {k: v for k, v in json.loads(payload).items() if k != "sha256"} == {
        "document": "personal-zorgplan", "format": "md", "identifying": False, "lang": "nl"}


def test_the_zorgplan_in_english_as_pdf(enrolled):
    tmp, env, _ = enrolled
    md, pdf = tmp / "plan.en.md", tmp / "plan.pdf"
    assert run_cli("plan", "mm-01", "--at", "2026-12-10", "--document", str(md), "--lang", "en", env=env).returncode == 0
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# My care plan\n")
    assert "One appointment for Type 2 diabetes in general practice and Heart failure in primary care." in text
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--document", str(pdf), "--lang", "en", env=env)
    assert done.returncode == 0, done.stderr
    assert pdf.read_bytes().startswith(b"%PDF-") and len(pdf.read_bytes()) > 5000


def test_the_fhir_export_is_one_patient_care_plan_addressing_every_condition_with_the_pathway_plans_as_parts(enrolled):
    from fhir.resources.R4B.bundle import Bundle

    tmp, env, plan = enrolled
    out = tmp / "careplan.json"
    done = run_cli("plan", "mm-01", "--at", "2026-12-10", "--fhir", str(out), env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    Bundle.model_validate(data)
    resources = {e["fullUrl"]: e["resource"] for e in data["entry"]}
    plans = [(url, r) for url, r in resources.items() if r["resourceType"] == "CarePlan"]
    (whole_url, whole), = [(url, r) for url, r in plans if "partOf" not in r]
    parts = [r for _, r in plans if "partOf" in r]
    conditions = {url: r for url, r in resources.items() if r["resourceType"] == "Condition"}
    assert sorted(r["code"]["text"] for r in conditions.values()) == [
        "COPD in de huisartsenpraktijk", "Diabetes mellitus type 2 in de huisartsenpraktijk", "Hartfalen in de eerste lijn"]
    assert sorted(a["reference"] for a in whole["addresses"]) == sorted(conditions)
    assert sorted(p["identifier"][0]["value"] for p in parts) == sorted(p["enrollment"] for p in plan["pathways"])
    assert all(p["partOf"] == [{"reference": whole_url}] and p["addresses"][0]["reference"] in conditions for p in parts)
    assert [a["detail"]["scheduledString"] for a in whole["activity"]] == [a["date"] for a in plan["appointments"]]
    assert any(n["text"].startswith("conflict metformine_bij_egfr_onder_stopgrens") for n in whole["note"])


def test_bad_document_options_write_nothing(enrolled):
    tmp, env, _ = enrolled
    before = rendered(tmp)
    wrong = run_cli("plan", "mm-01", "--document", str(tmp / "plan.docx"), env=env)
    assert wrong.returncode == 2 and "write the zorgplan as a .md or .pdf file" in wrong.stderr
    missing = run_cli("plan", "mm-01", "--document", str(tmp / "nowhere" / "plan.md"), env=env)
    assert missing.returncode == 1 and "the folder" in missing.stderr and "nothing written" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp / "nowhere").exists()
    lang = run_cli("plan", "mm-01", "--document", str(tmp / "x.md"), "--lang", "fr", env=env)
    assert lang.returncode == 2 and not (tmp / "x.md").exists()
    assert rendered(tmp) == before
