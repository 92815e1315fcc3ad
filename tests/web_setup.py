"""A store for the web tests: demo-dm-01 enrolled in diabetes on 2026-11-02, the huisarts's
intake recorded that day, advanced on 2026-11-16 (the POH's intake and the baseline laboratory
tests are due), and one account per role (password: ROLE-password-1).

For the browser tests: ``serve`` runs the real `pathways web` over such a store (what it serves:
a ``Site``), and ``log_in`` logs a page in. The fixtures that use them (``browser``, ``page``,
``web``, ``web_site``) are in conftest.py."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import mm01_on_metformin
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


MM_ENROLLED = dt.date(2026, 12, 3)
MM_TODAY = dt.date(2026, 12, 10)  # the plan page's date: the referral and the kidney consultation are one huisarts visit


def seed_multimorbid(url: str, folder: Path) -> list[str]:
    """``seed`` and then mm-01 (as tests/unit/test_plan_documents.py) enrolled on 2026-12-03 from the
    review stage in diabetes, COPD and heart failure, with an eGFR of 25 while on metformin (the
    conflict metformine_bij_egfr_onder_stopgrens, which escalates). Returns mm-01's enrollments."""
    seed(url)
    file, _ = mm01_on_metformin(folder)
    clock = FixedClock.on(MM_ENROLLED)
    store = open_store(clock, url, actor=Actor(user="setup", role="admin", via="test"))
    runtimes = Runtimes()
    return [enroll_file(store, runtimes, pathway, file, clock, "mm-01", "reviews").enrollment
            for pathway in ("diabetes", "copd", "heartfailure")]


# -- `pathways web` for the browser tests ---------------------------------------------------------
VENDOR = ROOT / "src" / "pathways" / "views" / "vendor"
VENDOR_BUNDLES = ("htmx.min.js", "mermaid.min.js", "codemirror.min.js")  # served by the app itself


@dataclass(frozen=True)
class Site:
    """What a test module's `pathways web` serves: the store ``seed`` makes (it returns the
    enrollment), the day the server takes for today, and with ``own_pathways`` a copy of the
    repository's pathways (PATHWAYS_PATH) that the tests may change, instead of the originals."""

    seed: Callable[[str], str] = seed
    today: dt.date = TODAY
    own_pathways: bool = False


@dataclass(frozen=True)
class Served:
    """A running `pathways web`: its address, the seeded enrollment, the file its output goes to
    (the server's log) and its own copy of the pathways (``Site.own_pathways``; else None: it
    reads the shipped ones)."""

    url: str
    enrollment: str
    log: Path
    pathways: Path | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(site: Site, folder: Path, prefect_home: Path) -> Iterator[Served]:
    """The real `pathways web` on a free port over a new store in ``folder`` (and there its log),
    its embedded Prefect server kept in ``prefect_home``, not the user's; stopped on leaving.
    Fails, with the server's output, when it does not start, and when the browser scripts the
    app serves are missing (scripts/setup.sh fetches them)."""
    missing = [bundle for bundle in VENDOR_BUNDLES if not (VENDOR / bundle).is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing in {VENDOR}: run scripts/setup.sh (it fetches and bundles them)")
    pathways = folder / "network" if site.own_pathways else None
    if pathways:
        shutil.copytree(ROOT / "pathways", pathways)
    url = f"sqlite:///{folder / 'store.db'}"
    enrollment = site.seed(url)
    port = free_port()
    env = {**os.environ, "PATHWAYS_DATABASE_URL": url, "PATHWAYS_TODAY": site.today.isoformat(),
           "PATHWAYS_WEB_SECRET": "w" * 40, "PATHWAYS_IDENTITY_SECRET": "s" * 32,
           "PYTHONPATH": str(ROOT / "src"), "DO_NOT_TRACK": "1", "PREFECT_HOME": str(prefect_home),
           **({"PATHWAYS_PATH": str(pathways)} if pathways else {})}
    log_file = folder / "web.log"
    log = log_file.open("w")
    process = subprocess.Popen([sys.executable, "-m", "pathways.cli", "web", "--port", str(port)], cwd=folder, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # until it accepts connections (a bound on waiting, not a timed assertion)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(f"pathways web did not start:\n{log_file.read_text()[-3000:]}")
                time.sleep(0.2)
        yield Served(f"http://127.0.0.1:{port}", enrollment, log_file, pathways)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def log_in(page, user: str) -> None:
    """On the log-in page (where a page that needs an account sends the browser): log in as
    ``user`` with its password."""
    page.fill("#name", user)
    page.fill("#password", password(user))
    page.click("button[type=submit]")
