"""Stored enrollment states carry a format and are read through explicit upgrades; every field
is stored, so changing a default in the code never changes a stored state (issue 25, item 5)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from contextlib import closing

import pytest

from conftest import FIXTURES
from pathways.access import Actor
from pathways.clock import FixedClock
from pathways.orchestration.service import Runtimes, advance_one
from pathways.runtime import stateformat
from pathways.runtime.core import ClosedEscalation, EnrollmentState, GoalProgress, OpenEscalation, StepProgress
from pathways.runtime.stateformat import FORMAT, StateFormatError, dump_state, load_state
from pathways.store.connect import make_engine, migrate
from pathways.store.db import Store

D = dt.date


def a_state() -> EnrollmentState:
    """Every part of a state: a step untouched, one done twice, goals, escalations open and closed."""
    return EnrollmentState(
        enrollment="diabetes-0123456789ab", patient="p-1", pathway="diabetes", version="1.2.0",
        version_key="diabetes@1.2.0#0123456789ab", enrolled_on=D(2026, 11, 2), as_of=D(2027, 1, 4), indicated=True,
        steps={"intake_huisarts": StepProgress(status="finished", done_on=(D(2026, 11, 3),)),
               "driemaandelijkse_controle": StepProgress(occurrence=2, status="gated", due_on=D(2027, 2, 1), done_on=(D(2026, 11, 4), D(2026, 12, 1)),
                                                         reasons=("well_controlled: true",)),
               "voetonderzoek": StepProgress()},
        goals={"hba1c_standaard": GoalProgress(step="doelen_afspreken", fact="hba1c_mmol_mol", target="<= 53 mmol/mol",
                                               agreed_on=D(2026, 12, 1), deadline=D(2027, 3, 2), baseline=58.0)},
        escalations={"hypoglykemie": OpenEscalation(since=D(2026, 11, 2), severity="urgent", action="bel de huisarts")},
        closed_escalations={"verwijzing_nefroloog": ClosedEscalation(opened=D(2026, 11, 2), closed=D(2026, 12, 1), how="resolved")},
    )


def test_a_state_is_stored_with_its_format_and_every_field_and_reads_back_the_same():
    state = a_state()
    text = dump_state(state)
    stored = json.loads(text)
    assert stored["format"] == FORMAT == 2
    assert stored["steps"]["voetonderzoek"] == {"occurrence": 0, "status": "waiting", "due_on": None, "done_on": [], "reasons": []}
    assert stored["closed_escalations"]["verwijzing_nefroloog"]["recovered"] is False
    assert stored["goals"]["hba1c_standaard"]["status"] == "open" and stored["goals"]["hba1c_standaard"]["latest"] is None
    assert stored["escalations"]["hypoglykemie"]["reasons"] == []
    assert load_state(text) == state
    assert load_state(json.dumps(stored, indent=2)) == state  # the same, written another way (the general path)


def test_changing_a_default_later_does_not_change_a_stored_state(monkeypatch):
    """Stored today; then the code's defaults change (a subclass with other defaults stands for a
    later version of the model): the stored state reads the same. Format 1, which left defaults
    out, is upgraded with the values its defaults had, not today's."""

    class LaterStep(StepProgress):
        occurrence: int = 1
        status: str = "due"
        reasons: tuple[str, ...] = ("changed",)

    class LaterClosed(ClosedEscalation):
        recovered: bool = True

    class LaterGoal(GoalProgress):
        status: str = "met"

    class LaterState(EnrollmentState):
        indicated: bool | None = False
        steps: dict[str, LaterStep]
        goals: dict[str, LaterGoal] = {}
        closed_escalations: dict[str, LaterClosed] = {}

    state = a_state()
    stored = dump_state(state)
    format_1 = state.model_dump_json(exclude_defaults=True)  # as code before format 2 stored it
    monkeypatch.setattr(stateformat, "EnrollmentState", LaterState)
    assert load_state(stored).model_dump() == state.model_dump()
    assert load_state(format_1).model_dump() == state.model_dump()
    # what storing without the defaults would have done: the untouched step comes back changed
    assert LaterState.model_validate_json(format_1).steps["voetonderzoek"].status == "due"


def test_format_1_is_upgraded_by_its_own_function_and_a_newer_format_is_refused():
    state = a_state()
    format_1 = json.loads(state.model_dump_json(exclude_defaults=True))
    assert "format" not in format_1 and format_1["steps"]["voetonderzoek"] == {}
    upgraded = stateformat.UPGRADES[1](format_1)
    assert upgraded["steps"]["voetonderzoek"] == {"occurrence": 0, "status": "waiting", "due_on": None, "done_on": [], "reasons": []}
    assert EnrollmentState.model_validate(upgraded) == state
    assert load_state(json.dumps(format_1)) == state

    newer = json.loads(dump_state(state)) | {"format": FORMAT + 1}
    with pytest.raises(StateFormatError, match=rf"format {FORMAT + 1}, written by a newer pathways \(this one reads formats 1 to {FORMAT}\): upgrade pathways"):
        load_state(json.dumps(newer))
    for bad, message in (('{"format": "2"}', "format '2', which no pathways wrote"), ("[1]", "not a JSON object"),
                         ("{", "not JSON"), ('{"format": 2, "enrollment": "e"}', "does not fit format 2")):
        with pytest.raises(StateFormatError, match=message):
            load_state(bad)


def test_every_state_of_the_store_written_by_c6acbe4_is_format_1_and_upgrades(tmp_path):
    """tests/fixtures/stores/c6acbe4.db: states stored without defaults and without a format. They
    read as they did, and an advance (on the versions the store published) stores them as format 2."""
    shutil.copy(FIXTURES / "stores" / "c6acbe4.db", tmp_path / "store.db")
    with closing(sqlite3.connect(tmp_path / "store.db")) as c:
        texts = dict(c.execute("select id, state from enrollment order by id").fetchall())
    assert len(texts) == 8
    before = {}
    for eid, text in texts.items():
        assert not text.startswith('{"format"')
        before[eid] = load_state(text)
        assert before[eid] == EnrollmentState.model_validate_json(text)  # today's defaults are those of format 1

    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    store = Store(engine, FixedClock.on(D(2026, 12, 20)).now, Actor(user="test", role="admin", via="test"))
    runtimes = Runtimes()
    for eid in texts:
        advance_one(store, runtimes, eid, FixedClock.on(D(2027, 1, 14)))
    with closing(sqlite3.connect(tmp_path / "store.db")) as c:
        after = dict(c.execute("select id, state from enrollment order by id").fetchall())
    for eid, text in after.items():
        stored = json.loads(text)
        assert stored["format"] == FORMAT and stored["as_of"] == "2027-01-14"
        assert all(set(p) == set(StepProgress.model_fields) for p in stored["steps"].values())
        assert stored["version_key"] == before[eid].version_key
        assert store.load(eid)[0] == load_state(text)
