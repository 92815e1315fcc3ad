"""Migrating enrollments to a newer pathway version (issue 25, items 3 and 4): the pure mapping and
comparison (runtime/migrate.py), then preview, apply, advance and revert through the real command."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3

import pytest

from conftest import ROOT
from pathways.clock import FixedClock
from pathways.definition.loader import load_pathway
from pathways.facts.model import Condition, Demographics, PatientFacts
from pathways.runtime.core import Runtime, enroll
from pathways.runtime.migrate import Blocked, Change, compare, map_state

START = dt.date(2025, 1, 6)
AT = dt.date(2025, 2, 3)  # the day the goals are agreed: the interventions come due
TARGET = "  hba1c_target_standard:\n    title: HbA1c-streefwaarde (< 70 jaar; >= 70 jaar met leefstijl en/of metformine)\n"
DIET = ("  - id: dieetadvisering\n    title: {nl: Dieetadvisering door de diëtist, en: Dietary counselling}\n    stage: interventions\n"
        "    discipline: dietist\n    requires: [doelen_afspreken]\n    evidence: {source: ndf_zorgstandaard, section: voedingsadvies, confidence: P}\n")
ANNUAL = "timing: {after: enrollment, at: [52w], every: 52w}"


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def version(tmp_path, name: str, *edits: tuple[str, str]) -> Runtime:
    """The shipped diabetes pathway with ``edits`` (old, new text), as version 1.3.0, in its own folder."""
    folder = tmp_path / name
    shutil.copytree(ROOT / "pathways", folder)
    file = folder / "diabetes" / "pathway.yaml"
    text = file.read_text(encoding="utf-8")
    for old, new in (*edits, ("version: 1.2.0\n", "version: 1.3.0\n")):
        text = edit(text, old, new)
    file.write_text(text, encoding="utf-8")
    return Runtime(load_pathway(str(file), templates=False))


@pytest.fixture(scope="module")
def enrolled():
    """A man of 54 with HbA1c 55 on lifestyle advice, through intake and anamnesis; on AT his goals
    are agreed and the interventions (metformin among them: 55 > 53) come due."""
    runtime = Runtime(load_pathway("diabetes", templates=False))
    patient = PatientFacts(patient="p1", demographics=Demographics(birth_date=dt.date(1970, 5, 1), sex="male"),
                           conditions=(Condition(fact="dm2_diagnosis", onset=dt.date(2024, 11, 1)),))
    state = enroll(runtime.loaded, "e1", "p1", START, runtime.evaluator)
    data = {"laboratorium_start": {"hba1c_mmol_mol": 55, "egfr_ml_min_1_73m2": 75},
            "anamnese_poh": {"treatment_step": "leefstijl", "frail": False}}
    for week in range(5):
        clock = FixedClock.on(START + dt.timedelta(weeks=week))
        state, _, _ = runtime.advance(state, patient, clock)
        for step in ("intake_huisarts", "intake_poh", "anamnese_poh", "laboratorium_start", "doelen_afspreken"):
            if state.steps[step].status == "due":
                state, _, observations = runtime.record(state, step, data.get(step, {}), patient, clock, require_all=False)
                patient = patient.model_copy(update={"observations": (*patient.observations, *observations)})
        state, _, _ = runtime.advance(state, patient, clock)
    assert state.as_of == AT
    assert {s: state.steps[s].status for s in ("metformine_starten", "dieetadvisering", "jaarcontrole")} == {
        "metformine_starten": "due", "dieetadvisering": "due", "jaarcontrole": "waiting"}
    assert list(state.goals) == ["hba1c_standaard"]
    return runtime, state, patient


def test_a_changed_threshold_that_flips_a_gate_is_listed_with_the_reasons_under_each_version(tmp_path, enrolled):
    old, state, patient = enrolled
    new = version(tmp_path, "v13", (TARGET + "    value: 53\n", TARGET + "    value: 58\n"))
    result = compare(state, patient, old, new, AT)
    assert result.outcome == "changed" and result.blocked == ()
    (change,) = result.changes
    assert (change.kind, change.subject, change.old, change.new) == ("status", "metformine_starten", "due", "gated")
    assert "hba1c_mmol_mol > hba1c_target_standard: false (hba1c_mmol_mol = 55 mmol/mol, observed 2025-01-13; " \
           "hba1c_target_standard = 58 mmol/mol)" in change.reasons_new
    assert result.mapped.version_key == new.evaluator.plan.version_key and result.mapped.as_of == state.as_of
    assert result.mapped.steps == state.steps  # mapped, not advanced: the next advance decides
    assert compare(state, patient, old, old, AT).outcome == "unchanged"


def test_a_changed_interval_moves_the_next_due_date(tmp_path, enrolled):
    old, state, patient = enrolled
    new = version(tmp_path, "v13", (ANNUAL, "timing: {after: enrollment, at: [50w], every: 50w}"))
    result = compare(state, patient, old, new, AT)
    assert result.changes == (Change("next_due", "jaarcontrole", dt.date(2026, 1, 5), dt.date(2025, 12, 22)),)


def test_a_step_removed_while_due_blocks_the_enrollment_and_one_done_is_dropped(tmp_path, enrolled):
    old, state, patient = enrolled
    new = version(tmp_path, "v13", (DIET, ""))
    result = compare(state, patient, old, new, AT)
    assert result.outcome == "blocked" and result.mapped is None
    assert result.blocked == (Blocked("dieetadvisering", "step 'dieetadvisering' is due (since 2025-02-03) and diabetes 1.3.0 "
                                                         "has no such step: record or resolve it first"),)
    done, _, _ = old.record(state, "dieetadvisering", {}, patient, FixedClock.on(AT))  # recorded: waiting, never due again
    mapped = map_state(done, new)
    assert mapped.blocked == () and "dieetadvisering" not in mapped.state.steps
    assert mapped.dropped == (Change("step_dropped", "dieetadvisering", "waiting", None),)
    assert compare(done, patient, old, new, AT).changes == mapped.dropped


def test_an_added_step_starts_fresh_and_shows_what_it_becomes(tmp_path, enrolled):
    old, state, patient = enrolled
    new = version(tmp_path, "v13", (DIET, DIET + DIET.replace("id: dieetadvisering", "id: dieetadvisering_groep")
                                    .replace("Dietary counselling", "Group dietary counselling")
                                    .replace("Dieetadvisering door", "Groepsdieetadvisering door")))
    result = compare(state, patient, old, new, AT)
    assert result.changes == (Change("step_added", "dieetadvisering_groep", None, "waiting"),
                              Change("status", "dieetadvisering_groep", None, "due"))
    assert result.mapped.steps["dieetadvisering_groep"].status == "waiting"  # fresh: the next advance makes it due


# -- through the command -------------------------------------------------------------------

COHORT = ROOT / "examples" / "cohort-diabetes"
MACRO = ("en: \"the macroalbuminuria threshold of {value} for men\"}\n    value: 25\n",
         "en: \"the macroalbuminuria threshold of {value} for men\"}\n    value: 1.0\n")
INTAKE = ("timing: {after: intake_huisarts, offset: 2w}", "timing: {after: intake_huisarts, offset: 3w}")


def rows(tmp_path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "store.db") as c:
        return c.execute(sql).fetchall()


def test_an_advance_between_the_checks_and_the_write_wins_and_that_enrollment_stays_on_its_version(tmp_path, monkeypatch):
    """Apply moves one enrollment per transaction, locked on the state version it read: an advance
    that comes in between makes that enrollment's move fail cleanly; the others move."""
    from pathways.orchestration import migrate as migration
    from pathways.orchestration.service import Runtimes, advance_one, enroll_file, open_store, publish
    from pathways.store import previews
    from pathways.store.db import StaleState

    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    monkeypatch.setenv("PATHWAYS_PATH", str(folder))
    clock = FixedClock.on(dt.date(2026, 12, 3))
    store = open_store(clock, url=f"sqlite:///{tmp_path / 'store.db'}")
    ids = [enroll_file(store, Runtimes(), "diabetes", COHORT / f"demo-dm-0{n}.json", clock).enrollment for n in (1, 2)]
    (old,) = {store.load(e)[0].version_key for e in ids}
    pathway = folder / "diabetes" / "pathway.yaml"
    pathway.write_text(edit(pathway.read_text(encoding="utf-8"), "version: 1.2.0\n", "version: 1.3.0\n"), encoding="utf-8")
    runtime = Runtimes().get("diabetes")
    new = runtime.evaluator.plan.version_key
    publish(store, runtime.loaded, new)
    result = migration.preview(store, Runtimes(), "diabetes", "1.3.0", clock.today())
    assert (result.enrollments, result.from_keys, result.to_key) == (2, [old], new)

    real_move = previews.move
    raced = sorted(ids)[0]

    def advanced_first(store_, digest, state, version, mapped, *rest, **more):
        if state.enrollment == raced:
            advance_one(store_, Runtimes(), raced, FixedClock.on(dt.date(2026, 12, 4)))  # a run of the next day, just now
        return real_move(store_, digest, state, version, mapped, *rest, **more)

    monkeypatch.setattr(previews, "move", advanced_first)
    moved = migration.apply(store, Runtimes(), result.hash)
    assert (moved.moved, moved.lost) == ([e for e in sorted(ids) if e != raced], [raced])
    assert {e: store.load(e)[0].version_key for e in ids} == {raced: old, **{e: new for e in ids if e != raced}}
    assert store.load(raced)[0].as_of == dt.date(2026, 12, 4)  # the advance's state, whole
    moved_on = {e: d for e, d in rows(tmp_path, "select id, next_due from enrollment")}
    assert all(moved_on[e] == "2026-12-03" for e in moved.moved)  # due at once: the next `advance --due` runs the new version
    monkeypatch.setattr(previews, "move", real_move)
    state, version = store.load(raced)
    with pytest.raises(StaleState):
        previews.move(store, result.hash, state, version - 1, map_state(state, Runtimes().get_version(new, store)).state,
                      "enrollment.migrated", {}, keep_old=True)
    assert store.load(raced) == (state, version)


def test_a_newer_version_published_after_the_preview_refuses_it(tmp_path, monkeypatch):
    from pathways.orchestration import migrate as migration
    from pathways.orchestration.service import Runtimes, enroll_file, open_store, publish

    folder = tmp_path / "pathways"
    shutil.copytree(ROOT / "pathways", folder)
    monkeypatch.setenv("PATHWAYS_PATH", str(folder))
    clock = FixedClock.on(dt.date(2026, 12, 3))
    store = open_store(clock, url=f"sqlite:///{tmp_path / 'store.db'}")
    enrolled = enroll_file(store, Runtimes(), "diabetes", COHORT / "demo-dm-01.json", clock).enrollment
    pathway = folder / "diabetes" / "pathway.yaml"
    keys = {}
    for before, after in (("1.2.0", "1.3.0"), ("1.3.0", "1.4.0")):
        pathway.write_text(edit(pathway.read_text(encoding="utf-8"), f"version: {before}\n", f"version: {after}\n"), encoding="utf-8")
        runtime = Runtimes().get("diabetes")
        keys[after] = runtime.evaluator.plan.version_key
        publish(store, runtime.loaded, keys[after])
        if after == "1.3.0":
            digest = migration.preview(store, Runtimes(), "diabetes", "1.3.0", clock.today()).hash
    with pytest.raises(migration.MigrationRefused) as refused:
        migration.apply(store, Runtimes(), digest)
    assert refused.value.problems == ["diabetes 1.4.0 was published after the version of this preview",
                                      "nothing migrated: make a new preview (`pathways migrate preview diabetes --to 1.3.0`)"]
    assert store.load(enrolled)[0].version == "1.2.0"
    with pytest.raises(migration.MigrationRefused) as refused:
        migration.preview(store, Runtimes(), "diabetes", "1.1.0", clock.today())
    assert refused.value.problems == ["diabetes 1.1.0 is not published in this store (published: 1.2.0, 1.3.0, 1.4.0): put that "
                                      "version's files on PATHWAYS_PATH and `pathways publish diabetes`"]


def test_the_text_preview_shows_under_each_change_the_conditions_that_now_hold_or_no_longer_do():
    from pathways.views.migration import summary_lines

    change = {"kind": "escalation", "subject": "verwijzing_nefroloog", "old": "closed", "new": "open", "reasons_old": [],
              "reasons_new": ["sex == \"female\": false (sex = male)", "acr_mg_mmol > macro_acr_men: true (acr_mg_mmol = 1.2 mg/mmol)"]}
    gone = {"kind": "status", "subject": "s", "old": "due", "new": "gated", "reasons_old": ["a: true", "b: true"],
            "reasons_new": ["a: true", "b: false"]}
    lines = summary_lines({"preview": "h", "pathway": "diabetes", "from": ["diabetes@1"], "to": "diabetes@2", "at": "2026-12-17",
                           "enrollments": 1, "unchanged": 0, "changed": [{"enrollment": "e", "changes": [change, gone]}], "blocked": []})
    text = "\n".join(lines)
    assert "escalation verwijzing_nefroloog: closed -> open\n      now: acr_mg_mmol > macro_acr_men: true" in text
    assert "status s: due -> gated\n      now: b: false\n      was: b: true" in text
    assert "now: a: true" not in text
