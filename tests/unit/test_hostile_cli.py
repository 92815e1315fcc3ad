"""Hostile files given to the real commands: an exit status of 1, a message that names the file,
the place and the fix, no traceback, and nothing of the patient in the store."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from conftest import FIXTURES, ROOT, run_cli
from pathways.definition import yamlsource
from pathways.facts.jsonread import MAX_DATA_BYTES, MAX_DEPTH


def environment(tmp_path):
    return {
        "PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PATHWAYS_TODAY": "2026-11-23",
    }


def stored(tmp_path) -> dict[str, int]:
    """Rows of patient data in the store (none when there is no store), and audit entries
    other than the store's own configuration record."""
    if not (tmp_path / "store.db").exists():
        return {}
    db = sqlite3.connect(tmp_path / "store.db")
    try:
        rows = {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in ("patient", "patient_identity", "enrollment", "fact", "decision")}
        rows["audit"] = db.execute("select count(*) from audit_entry where action != 'config.changed'").fetchone()[0]
    finally:
        db.close()
    return {table: count for table, count in rows.items() if count}


def refused(done, message: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Aborted" not in done.stderr and done.stdout == ""


def test_evaluate_refuses_a_deeply_nested_facts_file(tmp_path):
    path = tmp_path / "patient.json"
    path.write_text('{"patient": "p1", "observations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    done = run_cli("evaluate", "diabetes", "--facts", str(path), "--at", "2026-11-01", env=environment(tmp_path))
    column = len('{"patient": "p1", "observations": ') + MAX_DEPTH  # the object is level 1
    refused(done, f"error: {path}:1:{column}: the JSON nests deeper than {MAX_DEPTH} levels; "
                  "check that this is the file you meant: nothing pathways reads nests this deep")


def test_enroll_refuses_a_truncated_gzip_bundle_and_stores_nothing(tmp_path):
    packed = (FIXTURES / "fhir" / "synthea" / "dm_casimira.json.gz").read_bytes()
    path = tmp_path / "bundle.json.gz"
    path.write_bytes(packed[: len(packed) // 2])
    done = run_cli("enroll", "pt-hostile-1", "--pathway", "diabetes", "--fhir", str(path), env=environment(tmp_path))
    refused(done, f"error: {path}: the gzip file is truncated (it ends before its data does); copy or download it again")
    assert stored(tmp_path) == {}


def test_record_refuses_step_data_over_its_limit_before_opening_the_store(tmp_path):
    data = tmp_path / "values.json"
    data.write_text('{"notes": "' + "x" * MAX_DATA_BYTES + '"}')
    done = run_cli("record", "e-1", "intake_poh", "--data", str(data), env=environment(tmp_path))
    refused(done, f"error: {data}: the file is {(MAX_DATA_BYTES + 14) / 1e6:.1f} MB, over the 1.0 MB limit for the values of one step; "
                  "check that this is the file you meant")
    assert not (tmp_path / "store.db").exists()


def test_check_reports_a_hostile_cases_file_at_its_line(tmp_path):
    folder = tmp_path / "diabetes"
    shutil.copytree(ROOT / "pathways" / "diabetes", folder)
    shutil.copytree(ROOT / "pathways" / "_shared", tmp_path / "_shared")
    cases = folder / "cases.yaml"
    lines = cases.read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith("at: "))
    lines[first] = lines[first].split("at: ")[0] + "at: 2026-13-01"
    lines.append("deep: " + "[" * 5000 + "]" * 5000)
    cases.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run_cli("check", str(folder), env=environment(tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    column = len("deep: ") + yamlsource.MAX_DEPTH  # the mapping is level 1
    assert f"{cases}:{len(lines)}:{column}: PW005 the YAML nests deeper than {yamlsource.MAX_DEPTH} levels (flatten it)" in done.stdout + done.stderr
    # with the nesting gone, the impossible date is named at its place
    cases.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    done = run_cli("check", str(folder), env=environment(tmp_path))
    column = lines[first].index("2026-13-01") + 1
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (f"{cases}:{first + 1}:{column}: PW012 '2026-13-01' is not a date: month value is outside expected range of 1-12 "
            "(write dates as YYYY-MM-DD, a date that exists)") in done.stdout + done.stderr


@pytest.mark.parametrize(
    "setting, message, code",
    [
        ({"PATHWAYS_BATCH_SIZE": "0"}, "error: PATHWAYS_BATCH_SIZE: 0 enrollments per batch would advance nobody; set a whole number of at least 1, or unset it for the default 500", 2),
        ({"PATHWAYS_DATABASE_URL": "store.db"}, "error: PATHWAYS_DATABASE_URL: 'store.db' is not a database URL; write sqlite:///path/to/pathways.db or postgresql://user@host/database", 2),
        ({"PATHWAYS_ROLE": "boss"}, "error: PATHWAYS_ROLE: unknown role 'boss' (roles: coordinator, scheduler, auditor, admin)", 2),
        ({"PATHWAYS_DATABASE_URL": "sqlite:////proc/no-such/store.db"}, "error: the store's folder /proc/no-such (PATHWAYS_DATABASE_URL) cannot be created: No such file or directory; set PATHWAYS_DATABASE_URL to a place you can write", 1),
    ],
)
def test_a_wrong_setting_is_named_with_the_fix_before_anything_runs(tmp_path, setting, message, code):
    patient = tmp_path / "patient.json"
    patient.write_text(json.dumps({"patient": "pt-hostile-3", "conditions": [{"fact": "dm2_diagnosis", "onset": "2019-01-01"}]}))
    done = run_cli("enroll", "pt-hostile-3", "--pathway", "diabetes", "--facts", str(patient), env={**environment(tmp_path), **setting})
    assert (done.returncode, done.stderr.strip(), done.stdout) == (code, message, "")
    assert not (tmp_path / "store.db").exists()
