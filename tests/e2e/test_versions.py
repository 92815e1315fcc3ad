"""Enrollments are pinned to their pathway version: they run the files their store published,
whatever the files on disk say now; edited files are a draft nobody is enrolled in; a version
number is published once (issue 25, item 1). Through the real command, as a scheduler uses it."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3

import pytest

from conftest import FIXTURES, ROOT, run_cli

COHORT = ROOT / "examples" / "cohort-diabetes"
THRESHOLD = "  macro_acr_men:\n    title: Macroalbuminurie boven deze ACR (mannen)\n"


def environment(tmp_path, **more):
    return {
        "PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PATHWAYS_TODAY": "2026-12-03",
        **more,
    }


def edit(file, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    file.write_text(text.replace(old, new), encoding="utf-8")


def rows(tmp_path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "store.db") as c:
        return c.execute(sql).fetchall()


@pytest.mark.slow
def test_enrollments_keep_their_version_after_an_edit_and_a_new_version_runs_beside_them(tmp_path):
    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)  # a copy: the repository's pathway files are never edited
    pathway = folder / "diabetes" / "pathway.yaml"
    env = environment(tmp_path, PATHWAYS_PATH=str(folder))
    done = run_cli("run", "diabetes", "--cohort", str(COHORT), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ((old,),) = rows(tmp_path, "select distinct version_key from enrollment")
    assert old.startswith("diabetes@1.2.0#")
    before = rows(tmp_path, "select enrollment_id, step, kind from decision order by 1, 2, 3")

    # a threshold edited without a new version number: demo-dm-01 (male, ACR 1.2 mg/mmol) would be referred under it
    edit(pathway, THRESHOLD + "    label: {nl: \"de grens van {value} voor macroalbuminurie bij mannen\", "
         "en: \"the macroalbuminuria threshold of {value} for men\"}\n    value: 25\n",
         THRESHOLD + "    label: {nl: \"de grens van {value} voor macroalbuminurie bij mannen\", "
         "en: \"the macroalbuminuria threshold of {value} for men\"}\n    value: 1.0\n")
    draft = run_cli("evaluate", "diabetes", "--facts", str(COHORT / "demo-dm-01.json"), "--json", env=env)
    assert draft.returncode == 0, draft.stderr
    assert [e["id"] for e in json.loads(draft.stdout)["escalations"]] == ["verwijzing_nefroloog"]

    done = run_cli("advance", "--due", "--at", "2026-12-17", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "diabetes: advanced 4 enrollment(s) on 2026-12-17: no new decisions"
    assert rows(tmp_path, "select enrollment_id, step, kind from decision order by 1, 2, 3") == before  # as before the edit

    new = rows(tmp_path, "select version_key from audit_entry where action = 'pathway.published'")
    assert new == [(old,)]
    done = run_cli("publish", "diabetes", env=env)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert re.fullmatch(rf"error: diabetes 1\.2\.0 is published already with other content \({re.escape(old)}; these files are "
                        r"diabetes@1\.2\.0#[0-9a-f]{12}\): give the pathway a new `version:` and publish that; nothing published", line)
    assert rows(tmp_path, "select version_key from audit_entry where action = 'pathway.published'") == [(old,)]

    patient = tmp_path / "demo-dm-09.json"
    patient.write_text(json.dumps({**json.loads((COHORT / "demo-dm-01.json").read_text(encoding="utf-8")), "patient": "demo-dm-09"}),
                       encoding="utf-8")
    done = run_cli("enroll", "demo-dm-09", "--pathway", "diabetes", "--facts", str(patient), env=env)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {pathway} is a draft: diabetes 1.2.0 is published with other content ({old}, these files are diabetes@1.2.0#")
    assert line.endswith(f"enrollments run published versions only: bump `version:` in {pathway} and `pathways publish diabetes`; "
                         "demo-dm-09 not enrolled")
    assert rows(tmp_path, "select count(*) from patient where id = 'demo-dm-09'") == [(0,)]  # nothing of it stored

    # a new version, published: new enrollments run it, the others stay on theirs; one run advances both
    edit(pathway, "version: 1.2.0\n", "version: 1.3.0\n")
    done = run_cli("publish", "diabetes", env=env)
    assert done.returncode == 0, done.stderr
    newer = done.stdout.strip().removeprefix("published: ")
    assert newer.startswith("diabetes@1.3.0#")
    done = run_cli("enroll", "demo-dm-09", "--pathway", "diabetes", "--facts", str(patient), env=env)
    assert done.returncode == 0, done.stderr
    enrolled = done.stdout.split()[1]
    workers = {"PATHWAYS_BATCH_SIZE": "2", "PATHWAYS_WORKERS": "2"}  # the old version's batches in worker processes
    done = run_cli("advance", "--due", "--at", "2026-12-24", env={**env, **workers})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "diabetes 1.2.0: advanced 4 enrollment(s) on 2026-12-24: no new decisions"
    assert re.fullmatch(r"diabetes 1\.3\.0: advanced 1 enrollment\(s\) on 2026-12-24: .*1 escalated.*", lines[1]) and len(lines) == 2
    assert rows(tmp_path, "select version_key, count(*) from enrollment group by 1 order by 1") == [(old, 4), (newer, 1)]
    # the new version's threshold refers the new patient; demo-dm-01, on the old one, is not referred
    assert rows(tmp_path, "select enrollment_id from decision where step = 'verwijzing_nefroloog' and kind = 'escalated' "
                          "and decided_on = '2026-12-24'") == [(enrolled,)]
    assert rows(tmp_path, "select distinct version_key from decision where enrollment_id != "
                          f"'{enrolled}' order by 1") == [(old,)]
    assert rows(tmp_path, f"select distinct version_key from decision where enrollment_id = '{enrolled}'") == [(newer,)]
    prefect = next((tmp_path / "prefect").rglob("*.db"))
    with sqlite3.connect(prefect) as c:
        runs = c.execute("select r.flow_version, r.name from flow_run r join flow f on f.id = r.flow_id "
                         "where f.name = 'pathway-diabetes' and r.name like '%2026-12-24%' order by 1").fetchall()
    assert runs == [("1.2.0", "diabetes-2026-12-24-n4"), ("1.3.0", "diabetes-2026-12-24-n1")]  # one flow, a version each


@pytest.mark.slow
def test_a_store_written_by_older_code_advances_on_its_published_versions_and_an_unknown_version_is_one_line(tmp_path):
    """tests/fixtures/stores/c6acbe4.db runs versions whose files differ from today's (and that
    today's checks flag with PW050): they run from its trail."""
    shutil.copy(FIXTURES / "stores" / "c6acbe4.db", tmp_path / "store.db")
    env = environment(tmp_path, PATHWAYS_TODAY="2026-12-20")
    keys = dict(rows(tmp_path, "select pathway, version_key from enrollment group by 1"))
    assert keys["diabetes"] == "diabetes@1.1.0#92c81a4c32c8"
    done = run_cli("advance", "--due", "--at", "2027-01-14", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines() == [  # (nothing comes due there without recorded steps)
        "copd: advanced 1 enrollment(s) on 2027-01-14: no new decisions",
        "diabetes: advanced 5 enrollment(s) on 2027-01-14: no new decisions",
        "heartfailure: advanced 2 enrollment(s) on 2027-01-14: no new decisions"]
    assert rows(tmp_path, "select distinct as_of from enrollment") == [("2027-01-14",)]
    assert dict(rows(tmp_path, "select pathway, version_key from enrollment group by 1")) == keys

    unknown = "diabetes@0.9.0#0123456789ab"
    with sqlite3.connect(tmp_path / "store.db") as c:
        c.execute("update enrollment set version_key = ?, state = replace(state, ?, ?) where id = 'diabetes-15a6098a5db1'",
                  (unknown, keys["diabetes"], unknown))
    before = rows(tmp_path, "select count(*) from decision")
    done = run_cli("advance", "diabetes-15a6098a5db1", "--at", "2027-01-15", env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: {unknown} is not published in this store and the pathway files on disk are diabetes@1.2.0#"
        f"{_disk_hash(env)}: put that version's files in a folder on PATHWAYS_PATH and `pathways publish diabetes` "
        "(1 enrollment(s) of it; nothing advanced)"]
    assert rows(tmp_path, "select count(*) from decision") == before


def _disk_hash(env) -> str:
    done = run_cli("publish", "diabetes", env={**env, "PATHWAYS_DATABASE_URL": env["PATHWAYS_DATABASE_URL"] + ".other"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split("#")[1]
