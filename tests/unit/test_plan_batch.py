"""Personal plans made batch-wise (orchestration/careplan.py ``make_plans``): the same plans as
one patient at a time, a bad patient reported without stopping the others, and the stored plan
of the day replaced (and its making audited) only when it changed."""

from __future__ import annotations

import datetime as dt
import sqlite3

from test_plan_priorities import entries, mm01  # noqa: F401 (mm01: the fixture)

from pathways.access import Actor
from pathways.clock import FixedClock
from pathways.orchestration.careplan import make_plan, make_plans
from pathways.orchestration.service import Runtimes, open_store
from pathways.runtime.plan import PlanError

AT = dt.date(2026, 12, 10)


def test_plans_made_in_a_batch_are_those_made_one_by_one_and_a_changed_one_replaces_the_days_plan(mm01, tmp_path):  # noqa: F811
    store = open_store(FixedClock.on(AT), mm01["PATHWAYS_DATABASE_URL"], Actor(user="pathways-service", role="admin", via="test"))
    runtimes = Runtimes(templates=False)
    made_before = len(entries(tmp_path, "plan.made"))
    made = make_plans(store, runtimes, ["mm-01", "nobody", "mm-01"], AT)
    assert list(made) == ["mm-01", "nobody"]
    assert isinstance(made["nobody"], PlanError) and "unknown patient 'nobody'" in str(made["nobody"])
    plan, stored = made["mm-01"]
    assert stored.plan_changed and stored.decisions_added >= 1 and plan.conflicts and plan.escalations
    one, again = make_plan(store, runtimes, "mm-01", AT)
    assert one.to_json() == plan.to_json() and (again.plan_changed, again.decisions_added) == (False, 0)
    assert len(entries(tmp_path, "plan.made")) == made_before + 1
    other, changed = make_plans(store, runtimes, ["mm-01"], AT, window_days=3)["mm-01"]
    assert changed.plan_changed and other.digest != plan.digest
    with sqlite3.connect(tmp_path / "store.db") as c:
        assert c.execute("select window_days, digest from care_plan where patient_id = 'mm-01' and plan_on = ?",
                         (AT.isoformat(),)).fetchall() == [(3, other.digest)]
    assert len(entries(tmp_path, "plan.made")) == made_before + 2
    assert len(entries(tmp_path, "plan.escalated")) == len([e for e in plan.escalations if e.get("new")])
