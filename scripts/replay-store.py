"""Write the replay store and its expected decisions (tests/fixtures/stores/replay.db and
replay.expected.json), through the real `pathways` command, with every date pinned.

    PYTHONPATH=$PWD/src .venv/bin/python scripts/replay-store.py [OUT_DIR]

The store: the three pathways published; the demo cohort (examples/cohort-diabetes) in diabetes,
two patients each in COPD and heart failure (tests/fixtures/stores/replay-patients/), and mm-01
(tests/fixtures/multimorbid/mm-01.json) in all three (known for years: diabetes from the goals
stage on, the others from the reviews), enrolled on ENROLLED, advanced on ADVANCES with new facts,
some steps recorded (goals agreed) and an escalation resolved. Then the
replay (what tests/e2e/test_replay.py repeats on a copy): `advance --due` on each date of REPLAY, and
the decisions each one adds are the expectation. Only run this when the change of expectation has
a documented reason (tests/fixtures/stores/README.md).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORES = ROOT / "tests" / "fixtures" / "stores"
PATIENTS = STORES / "replay-patients"
MM01 = ROOT / "tests" / "fixtures" / "multimorbid" / "mm-01.json"
ENROLLED = "2026-11-02"
REPLAY = ["2027-02-15", "2027-04-19", "2027-07-05"]

# what people recorded, on which date: (date, patient, pathway, step, data)
RECORDED = [
    ("2026-12-01", "demo-dm-01", "diabetes", "intake_huisarts",
     {"fasting_glucose_mmol_l": {"value": 8.4, "unit": "mmol/L"}, "dm2_diagnosis": True}),
    ("2026-12-01", "demo-dm-03", "diabetes", "intake_huisarts",
     {"fasting_glucose_mmol_l": {"value": 9.6, "unit": "mmol/L"}, "dm2_diagnosis": True}),
    ("2026-12-01", "copd-01", "copd", "diagnose_huisarts",
     {"respiratory_symptoms": True, "relevant_exposure": True, "obstruction_confirmed_twice": True, "disease_burden": "verhoogd"}),
    ("2026-12-01", "copd-02", "copd", "diagnose_huisarts",
     {"respiratory_symptoms": True, "relevant_exposure": True, "obstruction_confirmed_twice": True, "disease_burden": "licht"}),
    ("2026-12-01", "hf-01", "heartfailure", "intake_poh",
     {"body_weight_kg": {"value": 85.5, "unit": "kg"}, "nyha_class": 2, "systolic_bp_mmhg": {"value": 118, "unit": "mm[Hg]"}}),
    ("2026-12-01", "mm-01", "diabetes", "doelen_afspreken", {}),
    ("2026-12-01", "hf-02", "heartfailure", "peptiden_en_ecg",
     {"nt_probnp_pg_ml": {"value": 640, "unit": "pg/mL"}, "ecg_abnormal": True}),
]
FACTS_ADDED = [("2026-12-01", "mm-01", PATIENTS / "later" / "mm-01-2026-12-01.json"),
               ("2027-01-04", "mm-01", PATIENTS / "later" / "mm-01-2027-01-04.json")]
RESOLVED = [("2026-12-01", "demo-dm-03", "diabetes", "verwijzing_nefroloog", "huisarts: verwijzing nu niet nodig (afgesproken met de patiënt)")]
ADVANCES = ["2026-12-01", "2027-01-04"]


def environment(work: Path, today: str) -> dict[str, str]:
    return {**os.environ, "PATHWAYS_DATABASE_URL": f"sqlite:///{work / 'store.db'}", "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PATHWAYS_TODAY": today}


def cli(work: Path, today: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pathways.cli", *args], cwd=ROOT, env=environment(work, today),
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.exit(f"pathways {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def enrollment(db: Path, patient: str, pathway: str) -> str:
    with closing(sqlite3.connect(db)) as c:
        (found,) = c.execute("select id from enrollment where patient_id = ? and pathway = ?", (patient, pathway)).fetchone()
    return found


def decisions_after(db: Path, last: int) -> tuple[list[dict], int]:
    """The decisions with a row id above ``last``, in a stable order, and the highest row id."""
    with closing(sqlite3.connect(db)) as c:
        rows = c.execute("select id, enrollment_id, step, kind, due_on, decided_on, version_key, reasons "
                         "from decision where id > ?", (last,)).fetchall()
    found = [{"enrollment": e, "step": s, "kind": k, "due_on": due, "decided_on": on, "version_key": v, "reasons": json.loads(r)}
             for _, e, s, k, due, on, v, r in rows]
    found.sort(key=lambda d: (d["enrollment"], d["step"] or "", d["due_on"], d["kind"]))
    return found, max([last] + [row[0] for row in rows])


def write_store(work: Path) -> None:
    for name in ("diabetes", "copd", "heartfailure"):
        cli(work, ENROLLED, "publish", name)
    cli(work, ENROLLED, "run", "diabetes", "--cohort", str(ROOT / "examples" / "cohort-diabetes"), "--at", ENROLLED)
    for name in ("copd", "heartfailure"):
        cli(work, ENROLLED, "run", name, "--cohort", str(PATIENTS / name), "--at", ENROLLED)
    cli(work, ENROLLED, "enroll", "mm-01", "--pathway", "diabetes", "--facts", str(MM01), "--from", "goals")
    for name in ("copd", "heartfailure"):
        cli(work, ENROLLED, "enroll", "mm-01", "--pathway", name, "--facts", str(MM01), "--from", "reviews")
    db = work / "store.db"
    for at in ADVANCES:
        cli(work, at, "advance", "--due", "--at", at)
        for on, patient, file in FACTS_ADDED:
            if on == at:
                cli(work, at, "facts", "add", patient, "--facts", str(file), "--at", at)
        for on, patient, pathway, step, data in RECORDED:
            if on == at:
                (work / "data.json").write_text(json.dumps(data), encoding="utf-8")
                cli(work, at, "record", enrollment(db, patient, pathway), step, "--data", str(work / "data.json"), "--at", at)
        for on, patient, pathway, step, reason in RESOLVED:
            if on == at:
                cli(work, at, "resolve", enrollment(db, patient, pathway), step, "--reason", reason, "--at", at)
    cli(work, ADVANCES[-1], "audit", "verify")


def compact(db: Path) -> None:
    """Everything in the one file (the write-ahead log checkpointed), vacuumed."""
    with closing(sqlite3.connect(db)) as c:
        c.execute("pragma wal_checkpoint(truncate)")
        c.execute("vacuum")


def replay(work: Path) -> list[dict]:
    db = work / "store.db"
    _, last = decisions_after(db, 0)
    advances = []
    for at in REPLAY:
        cli(work, at, "advance", "--due", "--at", at)
        found, last = decisions_after(db, last)
        advances.append({"at": at, "decisions": found})
    cli(work, REPLAY[-1], "audit", "verify")
    return advances


def main(out: Path) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "src", "pathways"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_store(work)
        compact(work / "store.db")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "store.db", out / "replay.db")
        replayed = Path(tmp) / "replay"
        replayed.mkdir()
        shutil.copy(work / "store.db", replayed / "store.db")
        advances = replay(replayed)
    expected = {"written_by": commit + (" (with uncommitted changes)" if dirty else ""), "store": "replay.db", "advances": advances}
    (out / "replay.expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out / 'replay.db'} ({(out / 'replay.db').stat().st_size} bytes) and {out / 'replay.expected.json'} "
          f"({sum(len(a['decisions']) for a in advances)} decisions over {len(REPLAY)} advances), by {expected['written_by']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else STORES)
