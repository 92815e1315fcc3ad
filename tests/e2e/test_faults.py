"""Faults: a cohort run killed half way and run again decides everything exactly once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from conftest import ROOT
from pathways.clock import FixedClock
from pathways.definition.loader import load_pathway
from pathways.facts.model import Condition, Demographics, Observation, PatientFacts
from pathways.orchestration.service import enrollment_id
from pathways.runtime.core import enroll
from pathways.store.connect import make_engine, migrate
from pathways.store.db import Store

pytestmark = pytest.mark.slow  # a cohort advanced through Prefect, killed and run again

AT = dt.date(2026, 11, 2)


def populate(url: str, count: int, at: dt.date = AT) -> None:
    engine = make_engine(url)
    migrate(engine)
    clock = FixedClock(dt.datetime(at.year, at.month, at.day, 12, tzinfo=dt.timezone.utc))
    store = Store(engine, clock.now)
    loaded = load_pathway("diabetes")
    with store.transaction() as session:
        from pathways.store.models import Enrollment, Patient

        for i in range(count):
            facts = PatientFacts(
                patient=f"fault-{i:04d}",
                demographics=Demographics(birth_date=dt.date(1940 + i % 50, 1 + i % 12, 1), sex="male" if i % 2 else "female"),
                conditions=(Condition(fact="dm2_diagnosis", onset=dt.date(2015, 1, 1)),),
                observations=(
                    Observation(fact="egfr_ml_min_1_73m2", value=20 + i % 80, unit="mL/min/{1.73_m2}", at=at),
                    Observation(fact="glucose_mmol_l", value=3 + (i % 25), unit="mmol/L", at=at),
                ),
            )
            session.add(Patient(id=facts.patient, created_at=clock.now()))
            session.flush()
            store._append(session, facts.patient, facts, "fault-test")
            state = enroll(loaded, enrollment_id(loaded, facts.patient), facts.patient, at)
            session.add(Enrollment(id=state.enrollment, patient_id=facts.patient, pathway="diabetes", version=state.version,
                                   version_key=state.version_key, enrolled_on=at, as_of=at, state=state.model_dump_json(),
                                   state_version=0, updated_at=clock.now()))
    engine.dispose()


def decision_keys(url: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as c:
        keys = [row[0] for row in c.execute(sa.text("select key from decision order by key"))]
    engine.dispose()
    return keys


def advance(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pathways.cli", "advance", "--due", "--at", AT.isoformat()],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_a_cohort_killed_half_way_and_run_again_decides_everything_exactly_once(tmp_path):
    count = 400
    killed_url, clean_url = f"sqlite:///{tmp_path / 'killed.db'}", f"sqlite:///{tmp_path / 'clean.db'}"
    populate(killed_url, count)
    populate(clean_url, count)
    base = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1", "PATHWAYS_BATCH_SIZE": "40", "PREFECT_LOGGING_LEVEL": "WARNING"}

    run = advance({**base, "PATHWAYS_DATABASE_URL": killed_url})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and run.poll() is None:
        if len(decision_keys(killed_url)) > 0:  # at least one batch committed
            break
        time.sleep(0.05)
    assert run.poll() is None, "the run finished before it could be killed"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    partial = decision_keys(killed_url)
    assert 0 < len(partial)

    again = advance({**base, "PATHWAYS_DATABASE_URL": killed_url})
    assert again.wait(timeout=300) == 0, again.stderr.read()[-3000:]
    clean = advance({**base, "PATHWAYS_DATABASE_URL": clean_url, "PREFECT_HOME": str(tmp_path / "prefect2")})
    assert clean.wait(timeout=300) == 0, clean.stderr.read()[-3000:]

    after_kill, uninterrupted = decision_keys(killed_url), decision_keys(clean_url)
    assert len(after_kill) == len(set(after_kill))  # nothing duplicated
    assert after_kill == uninterrupted  # nothing missing
    assert len({key.split(":")[0] for key in after_kill}) == count  # every enrollment advanced
    assert len(partial) < len(after_kill)  # the kill really landed half way
