"""Migrating enrollments through the real commands: preview, apply, advance (through Prefect) and
revert (the pure mapping and comparison are in tests/unit/test_migrate.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT, run_cli

from test_migrate import COHORT, INTAKE, MACRO, edit, rows


@pytest.mark.slow
def test_preview_apply_advance_and_revert_through_the_command(tmp_path):
    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PATHWAYS_TODAY": "2026-12-03",
           "PATHWAYS_PATH": str(folder)}
    done = run_cli("run", "diabetes", "--cohort", str(COHORT), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ids = dict(rows(tmp_path, "select patient_id, id from enrollment"))
    (old,) = {key for (key,) in rows(tmp_path, "select version_key from enrollment")}
    first = ids["demo-dm-01"]
    (tmp_path / "intake.json").write_text('{"fasting_glucose_mmol_l": 7.5, "dm2_diagnosis": true}', encoding="utf-8")
    done = run_cli("record", first, "intake_huisarts", "--data", str(tmp_path / "intake.json"), env=env)
    assert done.returncode == 0, done.stderr

    pathway = folder / "diabetes" / "pathway.yaml"
    text = pathway.read_text(encoding="utf-8")
    for before, after in (MACRO, INTAKE, ("version: 1.2.0\n", "version: 1.3.0\n")):
        text = edit(text, before, after)
    pathway.write_text(text, encoding="utf-8")

    # bad input: a draft, the same version; nothing kept
    done = run_cli("migrate", "preview", "diabetes", "--to", "1.3.0", env=env)
    assert (done.returncode, done.stderr) == (1, "error: diabetes 1.3.0 is not published in this store (published: 1.2.0); the files "
                                                 "on disk are that version, a draft: publish it first with `pathways publish diabetes`\n")
    done = run_cli("migrate", "preview", "diabetes", "--to", "1.2.0", env=env)
    assert done.returncode == 1 and done.stderr.startswith("error: 1.2.0 is not newer than the version the enrollments of diabetes run")
    assert rows(tmp_path, "select count(*) from migration_preview") == [(0,)]

    done = run_cli("publish", "diabetes", env=env)
    assert done.returncode == 0, done.stderr
    new = done.stdout.strip().removeprefix("published: ")
    done = run_cli("migrate", "preview", "diabetes", "--to", "1.3.0", "--json", "--html", str(tmp_path / "preview.html"), env=env)
    assert done.returncode == 0, done.stderr
    preview = json.loads(done.stdout)
    digest = preview["preview"]
    assert {k: preview[k] for k in ("pathway", "from", "to", "enrollments", "unchanged", "blocked")} == {
        "pathway": "diabetes", "from": [old], "to": new, "enrollments": 4, "unchanged": 3, "blocked": []}
    (changed,) = preview["changed"]
    assert changed["enrollment"] == first
    assert [(c["kind"], c["subject"], c["old"], c["new"]) for c in changed["changes"]] == [
        ("next_due", "intake_poh", "2026-12-17", "2026-12-24"), ("escalation", "verwijzing_nefroloog", "closed", "open")]
    assert any("macro_acr_men = 1.0 mg/mmol" in reason for reason in changed["changes"][1]["reasons_new"])
    assert "verwijzing_nefroloog" in (tmp_path / "preview.html").read_text(encoding="utf-8")
    assert rows(tmp_path, "select distinct version_key from enrollment") == [(old,)]  # a preview changes nothing

    # a stale preview: the enrollments advanced since
    done = run_cli("advance", "--due", "--at", "2026-12-10", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_cli("migrate", "apply", digest, env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "error: nothing migrated: make a new preview (`pathways migrate preview diabetes --to 1.3.0`)"
    assert f"error: {first} was advanced or recorded since the preview (to 2026-12-10)" in done.stderr.splitlines()
    assert rows(tmp_path, "select distinct version_key from enrollment") == [(old,)]
    done = run_cli("migrate", "apply", "0" * 64, env=env)
    assert done.returncode == 1 and done.stderr.startswith("error: no migration preview '" + "0" * 64 + "' in this store")

    # coordinators and admins only
    done = run_cli("migrate", "preview", "diabetes", "--to", "1.3.0", "--at", "2026-12-10", "--json", env={**env, "PATHWAYS_ROLE": "scheduler"})
    assert done.returncode == 1 and "needs the permission 'enrollment.migrate'" in done.stderr
    done = run_cli("migrate", "preview", "diabetes", "--to", "1.3.0", "--at", "2026-12-10", "--json", env={**env, "PATHWAYS_ROLE": "coordinator"})
    assert done.returncode == 0, done.stderr
    digest = json.loads(done.stdout)["preview"]
    done = run_cli("migrate", "apply", digest, env={**env, "PATHWAYS_ROLE": "coordinator"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"migrated 4 enrollment(s) of diabetes to {new}; 0 blocked stay on their version (preview {digest[:12]})"
    assert rows(tmp_path, "select distinct version_key, version from enrollment") == [(new, "1.3.0")]
    audited = rows(tmp_path, "select enrollment_id, version_key, payload from audit_entry where action = 'enrollment.migrated' order by 1")
    assert [(e, k) for e, k, _ in audited] == sorted((e, new) for e in ids.values())
    assert all(json.loads(p)["from"] == old and json.loads(p)["to"] == new and json.loads(p)["preview"] == digest for _, _, p in audited)
    done = run_cli("migrate", "apply", digest, env=env)
    assert (done.returncode, done.stderr) == (1, f"error: preview {digest[:12]} was applied already: make a new preview\n")

    # revert and apply again: the trail shows both
    done = run_cli("migrate", "revert", digest, env=env)
    assert done.returncode == 0, done.stderr
    assert rows(tmp_path, "select distinct version_key from enrollment") == [(old,)]
    assert rows(tmp_path, "select count(*) from audit_entry where action = 'enrollment.migration_reverted'") == [(4,)]
    done = run_cli("migrate", "preview", "diabetes", "--to", "1.3.0", "--at", "2026-12-10", "--json", env=env)
    digest = json.loads(done.stdout)["preview"]
    assert run_cli("migrate", "apply", digest, env=env).returncode == 0

    story = run_cli("audit", "timeline", first, "--lang", "en", env=env).stdout
    assert f"moved back from {new} to {old} (preview " in story and f"moved from {old} to {new} (preview {digest[:12]})" in story

    # the next advance runs the new version: its threshold refers demo-dm-01
    done = run_cli("advance", "--due", "--at", "2026-12-17", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert rows(tmp_path, "select enrollment_id, version_key from decision where kind = 'escalated' and decided_on = '2026-12-17'") == [(first, new)]
    done = run_cli("migrate", "revert", digest, env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "error: nothing reverted: those enrollments run the new version now"
    assert rows(tmp_path, "select distinct version_key from enrollment") == [(new,)]

    # one enrollment per patient and pathway: enrolling again in a newer version points to `pathways migrate`
    pathway.write_text(edit(pathway.read_text(encoding="utf-8"), "version: 1.3.0\n", "version: 1.4.0\n"), encoding="utf-8")
    assert run_cli("publish", "diabetes", env=env).returncode == 0
    done = run_cli("enroll", "demo-dm-02", "--pathway", "diabetes", "--facts", str(COHORT / "demo-dm-02.json"), env=env)
    assert (done.returncode, done.stderr) == (1, f"error: demo-dm-02 is enrolled in diabetes 1.3.0 already ({ids['demo-dm-02']}); move it to "
                                                 "1.4.0 with `pathways migrate preview diabetes --to 1.4.0` and `pathways migrate apply HASH`; "
                                                 "demo-dm-02 not enrolled\n")
    assert rows(tmp_path, "select count(*) from enrollment") == [(4,)]
