"""Care-plan documents in headless Chromium, and `pathways run` reading an NDJSON bulk export
through Prefect (the rest is in tests/unit/test_documents.py)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from conftest import ROOT, dump_dom, run_cli
from pathways.definition.documents import DOCUMENTS, LANGS

from test_documents import PATIENTS, _ndjson_export, render, world  # noqa: F401 (world: a fixture)


@pytest.mark.browser
def test_html_documents_render_in_a_headless_browser(world, tmp_path, chromium):
    for name, document, lang in [(n, d, lg) for n in PATIENTS for d in DOCUMENTS for lg in LANGS]:
        html, context = render(world, name, document, lang, "html")
        page = tmp_path / f"{name}-{document}-{lang}.html"
        page.write_text(html, encoding="utf-8")
        done = dump_dom(chromium, page, tmp_path / "profile", wait_ms=5000)
        dom = done.stdout
        assert '<main id="document">' in dom and "<h1>" in dom, done.stderr[-1000:]
        assert context["patient"]["id"] in dom and "{{" not in dom
        assert dom.count("<h2>") >= 3 and f'lang="{lang}"' in dom


@pytest.mark.slow
def test_run_cohort_reads_a_bulk_export_and_refuses_a_broken_one_whole(tmp_path):
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    _ndjson_export(cohort)
    shutil.copy(ROOT / "examples" / "cohort-diabetes" / "demo-dm-01.json", cohort)
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PREFECT_HOME": str(tmp_path / "prefect"),
           "PATHWAYS_TODAY": "2026-11-01", "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": "", "PATHWAYS_IDENTITY_SECRET_FILE": str(tmp_path / "k")}
    done = run_cli("run", "diabetes", "--cohort", str(cohort), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"patients read +│ +3 │", done.stdout) and re.search(r"enrolled and advanced +│ +3 │", done.stdout)
    # a delta of the export (a later HbA1c of one patient) for the same store: known patients get what is new
    lines = (cohort / "Observation.ndjson").read_text(encoding="utf-8").splitlines()
    hba1c = next(json.loads(line) for line in lines if '"4548-4"' in line)
    hba1c.update({"id": "delta-hba1c-1", "effectiveDateTime": "2026-10-20T09:00:00+02:00", "issued": "2026-10-20T09:00:00+02:00"})
    hba1c["valueQuantity"]["value"] = 6.9
    (cohort / "Observation.ndjson").write_text("\n".join(lines + [json.dumps(hba1c)]) + "\n", encoding="utf-8")
    delta = run_cli("run", "diabetes", "--cohort", str(cohort), env=env)
    assert delta.returncode == 0, delta.stderr[-2000:]
    assert re.search(r"enrolled and advanced +│ +0 │", delta.stdout) and re.search(r"already enrolled, advanced +│ +3 │", delta.stdout)
    assert re.search(r"facts added +│ +1 │", delta.stdout), delta.stdout
    # one malformed line: the whole bulk export is refused (named by file and line), the rest runs
    with (cohort / "Observation.ndjson").open("a", encoding="utf-8") as handle:
        handle.write('{"resourceType": "Observation", "status": \n')
    again = run_cli("run", "diabetes", "--cohort", str(cohort), env={**env, "PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'two.db'}"})
    assert again.returncode == 1
    assert f"{cohort / 'Observation.ndjson'}:" in again.stderr and "malformed JSON" in again.stderr
    assert re.search(r"enrolled and advanced +│ +1 │", again.stdout)
