"""A store for the web tests: demo-dm-01 enrolled in diabetes on 2026-11-02, the huisarts's
intake recorded that day, advanced on 2026-11-16 (the POH's intake and the baseline laboratory
tests are due), and one account per role (password: ROLE-password-1)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pathways.access import Actor
from pathways.clock import FixedClock
from pathways.facts.load import load_patient_file
from pathways.orchestration.accounts import add_user
from pathways.orchestration.service import Runtimes, advance_one, enroll_file, enroll_patient, open_store, record_step

ROOT = Path(__file__).resolve().parents[1]
ENROLLED = dt.date(2026, 11, 2)
TODAY = dt.date(2026, 11, 16)
USERS = {"poh-anna": "scheduler", "coord-ben": "coordinator", "audit-cas": "auditor"}


def password(user: str) -> str:
    return f"{USERS[user]}-password-1"


def seed(url: str) -> str:
    """The store at ``url`` as described above; returns the enrollment id."""
    admin = Actor(user="setup", role="admin", via="test")
    store = open_store(FixedClock.on(ENROLLED), url, actor=admin)
    runtimes = Runtimes()
    read = load_patient_file(ROOT / "examples" / "cohort-diabetes" / "demo-dm-01.json")
    enrollment = enroll_patient(store, runtimes, "diabetes", read, "file:demo-dm-01.json", FixedClock.on(ENROLLED)).enrollment
    advance_one(store, runtimes, enrollment, FixedClock.on(ENROLLED))
    record_step(store, runtimes, enrollment, "intake_huisarts", {"fasting_glucose_mmol_l": 8.1, "dm2_diagnosis": True}, FixedClock.on(ENROLLED))
    advance_one(store, runtimes, enrollment, FixedClock.on(TODAY))
    for user, role in USERS.items():
        add_user(store, user, role, password(user))
    return enrollment


REFERRED = dt.date(2026, 11, 16)  # the laboratory results that open the kidney referral
CONTACTED = dt.date(2026, 11, 23)  # the referral recorded: the specialist saw the patient
AUDIT_TODAY = dt.date(2026, 11, 30)
ADMIN = ("admin-dee", "admin-password-1")


def seed_audit(url: str) -> str:
    """``seed`` and then: on 2026-11-16 laboratory results with an eGFR of 25 (the escalation
    'verwijzing_nefroloog' opens: a referral), on 2026-11-23 the referral recorded with its
    specialist contact date (acted on after 7 days); an admin account. Returns the enrollment."""
    enrollment = seed(url)
    admin = Actor(user="setup", role="admin", via="test")
    store = open_store(FixedClock.on(REFERRED), url, actor=admin)
    runtimes = Runtimes()
    record_step(store, runtimes, enrollment, "laboratorium_start",
                {"hba1c_mmol_mol": 60, "fasting_glucose_mmol_l": 8, "egfr_ml_min_1_73m2": 25, "creatinine_umol_l": 200,
                 "potassium_mmol_l": 4.5, "acr_mg_mmol": 3}, FixedClock.on(REFERRED))
    record_step(store, runtimes, enrollment, "verwijzing_nefroloog",
                {"referral_date": REFERRED.isoformat(), "specialist_contact_date": CONTACTED.isoformat()}, FixedClock.on(CONTACTED))
    add_user(store, ADMIN[0], "admin", ADMIN[1])
    return enrollment


MULTIMORBID = ROOT / "tests" / "fixtures" / "multimorbid" / "mm-01.json"  # diabetes, COPD and heart failure
MM_ENROLLED = dt.date(2026, 12, 3)
MM_TODAY = dt.date(2026, 12, 10)  # the plan page's date: the referral and the kidney consultation are one huisarts visit


def seed_multimorbid(url: str, folder: Path) -> list[str]:
    """``seed`` and then mm-01 (as tests/test_plan_documents.py) enrolled on 2026-12-03 from the
    review stage in diabetes, COPD and heart failure, with an eGFR of 25 while on metformin (the
    conflict metformine_bij_egfr_onder_stopgrens, which escalates). Returns mm-01's enrollments."""
    import json

    seed(url)
    patient = json.loads(MULTIMORBID.read_text(encoding="utf-8"))
    patient["observations"] += [{"fact": "egfr_ml_min_1_73m2", "value": 25, "unit": "mL/min/{1.73_m2}", "at": "2026-11-25"},
                                {"fact": "treatment_step", "value": "metformine", "at": "2026-11-25"}]
    file = folder / "mm-01.json"
    file.write_text(json.dumps(patient), encoding="utf-8")
    clock = FixedClock.on(MM_ENROLLED)
    store = open_store(clock, url, actor=Actor(user="setup", role="admin", via="test"))
    runtimes = Runtimes()
    return [enroll_file(store, runtimes, pathway, file, clock, "mm-01", "reviews").enrollment
            for pathway in ("diabetes", "copd", "heartfailure")]
