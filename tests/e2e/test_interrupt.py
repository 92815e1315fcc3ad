"""Interrupting is safe: Ctrl-C (SIGINT) or SIGTERM sent to a real `pathways` process while it
works stops it within seconds, with what was done and what not, exit status 130 / 143, no
traceback and no process left behind; running it again finishes the rest exactly once (the same
decisions and audit entries as a run never interrupted)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import ROOT
from pathways.facts.model import Condition, Demographics, Observation, PatientFacts
from pathways.store.connect import make_engine
from test_faults import AT, populate


STOPPED_WITHIN = 30  # seconds from the signal to the exit: a batch in flight, the run's end, the server's stop (a busy two-core machine)


def environment(tmp_path: Path, url: str, name: str) -> dict[str, str]:
    return {**os.environ, "PATHWAYS_DATABASE_URL": url, "PREFECT_HOME": str(tmp_path / f"prefect-{name}"), "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PATHWAYS_BATCH_SIZE": "10", "PREFECT_LOGGING_LEVEL": "WARNING",
            "PATHWAYS_TODAY": AT.isoformat()}


class Command:
    """A `pathways` command in a session of its own (as a terminal's job would be), its output in files."""

    def __init__(self, tmp_path: Path, name: str, args: list[str], env: dict[str, str]):
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        self.process = subprocess.Popen([sys.executable, "-m", "pathways.cli", *args], cwd=ROOT, env=env, stdout=self.out.open("w"),
                                        stderr=self.err.open("w"), start_new_session=True)

    def wait_for(self, condition, what: str, seconds: float = 240) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert self.process.poll() is None, f"it ended before {what}: {self.err.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no {what} after {seconds} s"
            time.sleep(0.05)

    def interrupt(self, signum: int, group: bool) -> float:
        """The signal to the whole process group (Ctrl-C in a terminal) or to the process only (a
        supervisor's SIGTERM); the seconds until it exited."""
        sent = time.monotonic()
        if group:
            os.killpg(self.process.pid, signum)
        else:
            os.kill(self.process.pid, signum)
        try:
            self.process.wait(timeout=STOPPED_WITHIN * 3)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        return time.monotonic() - sent

    def finish(self, timeout: float = 300) -> int:
        return self.process.wait(timeout=timeout)

    def left_behind(self, grace: float = 10) -> list[str]:
        """Processes still alive in the command's session (its workers, the embedded server),
        after a grace period; zombies (ended, not yet reaped by init) do not count."""
        deadline = time.monotonic() + grace
        while True:
            alive = session_processes(self.process.pid)
            if not alive or time.monotonic() > deadline:
                for pid in alive:
                    try:
                        os.kill(int(pid.split()[0]), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return alive
            time.sleep(0.2)


def session_processes(session: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            found.append(f"{stat.parent.name} {cmdline}")
    return found


def count(url: str, sql: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(sa.text(sql)).scalar_one()
    except sa.exc.OperationalError:  # not created yet, or busy: not yet
        return 0
    finally:
        engine.dispose()


def trail(url: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The decisions' keys and the audit entries (action, subject), sorted: what a rerun must
    complete exactly once."""
    engine = make_engine(url)
    with engine.connect() as c:
        keys = [r[0] for r in c.execute(sa.text("select key from decision order by key"))]
        entries = [tuple(r) for r in c.execute(sa.text("select action, subject from audit_entry order by action, subject"))]
    engine.dispose()
    return keys, entries


def assert_stopped_cleanly(command: Command, signum: int, took: float) -> str:
    stderr = command.err.read_text()
    assert command.process.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr and "Crash detected" not in stderr, stderr[-3000:]
    assert f"interrupted ({signal.Signals(signum).name}): stopped cleanly" in stderr, stderr[-3000:]
    assert took < STOPPED_WITHIN, f"stopped after {took:.1f} s"
    assert command.left_behind() == []
    return stderr


@pytest.mark.slow
def test_advance_due_stopped_by_ctrl_c_half_way_reports_and_a_rerun_finishes_exactly_once(tmp_path):
    size = 300
    url, clean_url = f"sqlite:///{tmp_path / 'stopped.db'}", f"sqlite:///{tmp_path / 'clean.db'}"
    populate(url, size)
    populate(clean_url, size)
    args = ["advance", "--due", "--at", AT.isoformat()]

    # Batches of one: the run takes about 3 s after its first decision instead of 0.5 s, so the
    # signal lands half way (with batches of ten a busy machine once finished all before it). All
    # three runs alike: a changed setting is audited (config.changed), which the trails compare.
    def one_by_one(name: str, at_url: str) -> dict[str, str]:
        return {**environment(tmp_path, at_url, name), "PATHWAYS_BATCH_SIZE": "1"}

    stopped = Command(tmp_path, "stopped", args, one_by_one("stopped", url))
    stopped.wait_for(lambda: count(url, "select count(*) from decision") > 0, "first batch written")
    took = stopped.interrupt(signal.SIGINT, group=True)  # Ctrl-C: the workers and the server see it too
    assert_stopped_cleanly(stopped, signal.SIGINT, took)
    done = count(url, "select count(distinct enrollment_id) from decision")
    assert 0 < done < size
    line = stopped.out.read_text().strip()
    assert line.startswith(f"diabetes: advanced {done} of {size} enrollment(s) on {AT} ({size - done} not yet: stopped): "), line

    again = Command(tmp_path, "again", args, one_by_one("stopped", url))
    assert again.finish() == 0, again.err.read_text()[-3000:]
    assert f" {size - done} indicated" in again.out.read_text()  # new decisions for the rest only
    clean = Command(tmp_path, "clean", args, one_by_one("clean", clean_url))
    assert clean.finish() == 0, clean.err.read_text()[-3000:]
    assert trail(url) == trail(clean_url)  # every decision and audit entry once, none missing


def cohort(folder: Path, size: int) -> Path:
    folder.mkdir()
    for i in range(size):
        facts = PatientFacts(
            patient=f"cohort-{i:04d}",
            demographics=Demographics(birth_date=dt.date(1940 + i % 50, 1 + i % 12, 1), sex="male" if i % 2 else "female"),
            conditions=(Condition(fact="dm2_diagnosis", onset=dt.date(2015, 1, 1)),),
            observations=(Observation(fact="egfr_ml_min_1_73m2", value=20 + i % 80, unit="mL/min/{1.73_m2}", at=AT),
                          Observation(fact="hba1c_mmol_mol", value=40 + i % 40, unit="mmol/mol", at=AT)),
        )
        (folder / f"patient-{i:04d}.json").write_text(facts.model_dump_json())
    return folder


@pytest.mark.slow
def test_run_cohort_stopped_by_sigterm_while_enrolling_reports_and_a_rerun_finishes_exactly_once(tmp_path):
    size = 400
    patients = cohort(tmp_path / "cohort", size)
    url, clean_url = f"sqlite:///{tmp_path / 'stopped.db'}", f"sqlite:///{tmp_path / 'clean.db'}"
    args = ["run", "diabetes", "--cohort", str(patients), "--at", AT.isoformat()]

    stopped = Command(tmp_path, "stopped", args, environment(tmp_path, url, "stopped"))
    stopped.wait_for(lambda: count(url, "select count(*) from enrollment") > 0, "first enrollment")
    took = stopped.interrupt(signal.SIGTERM, group=False)  # a supervisor stopping the process
    stderr = assert_stopped_cleanly(stopped, signal.SIGTERM, took)
    enrolled = count(url, "select count(*) from enrollment")
    assert 0 < enrolled < size
    assert count(url, "select count(*) from decision") == 0  # stopped before the run: nothing advanced
    assert f"stopped after {enrolled} patient(s) of the cohort: the patient files after them were not read" in stderr
    table = stopped.out.read_text()
    for row, value in (("patient files", size), ("patients read", enrolled), ("enrolled and advanced", 0),
                       ("enrolled, not advanced yet (stopped)", enrolled)):
        assert any(line.split("│")[1:3] and line.split("│")[1].strip() == row and line.split("│")[2].strip() == str(value)
                   for line in table.splitlines()), (row, value, table)

    again = Command(tmp_path, "again", args, environment(tmp_path, url, "stopped"))
    assert again.finish() == 0, again.err.read_text()[-3000:]
    clean = Command(tmp_path, "clean", args, environment(tmp_path, clean_url, "clean"))
    assert clean.finish() == 0, clean.err.read_text()[-3000:]
    assert count(url, "select count(*) from enrollment") == size
    assert trail(url) == trail(clean_url)


@pytest.mark.slow  # a real `pathways simulate` process
def test_simulate_stopped_by_ctrl_c_prints_the_patients_done_and_stores_nothing(tmp_path):
    size = 24
    patients = cohort(tmp_path / "cohort", size)
    files = sorted(patients.iterdir())
    for path in files:  # read time older than the contents: the first read of a file moves it (relatime)
        os.utime(path, (time.time() - 3600, path.stat().st_mtime))
    before = {path: path.stat().st_atime for path in files}
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    args = ["simulate", "diabetes", "--patients", str(patients), "--months", "36", "--start", AT.isoformat()]

    stopped = Command(tmp_path, "stopped", args, environment(tmp_path, url, "stopped"))
    stopped.wait_for(lambda: files[1].stat().st_atime != before[files[1]], "second patient read")  # (the first one simulated)
    took = stopped.interrupt(signal.SIGINT, group=True)
    stderr = assert_stopped_cleanly(stopped, signal.SIGINT, took)
    rows = [line for line in stopped.out.read_text().splitlines() if "cohort-" in line]
    assert 1 <= len(rows) < size
    assert f"stopped after {len(rows)} patient(s) of the cohort" in stderr
    assert not (tmp_path / "untouched.db").exists()  # a simulation stores nothing: nothing to finish

    again = Command(tmp_path, "again", args, environment(tmp_path, url, "stopped"))
    assert again.finish() == 0, again.err.read_text()[-3000:]
    all_rows = [line for line in again.out.read_text().splitlines() if "cohort-" in line]
    assert len(all_rows) == size and all_rows[:len(rows)] == rows  # the same patients, the same results, then the rest


@pytest.mark.slow
def test_killing_the_command_leaves_no_worker_or_server_behind(tmp_path):
    """SIGKILL cannot be handled: the workers and the embedded server (a process group of its
    own, so that a Ctrl-C does not reach it) notice their parent is gone and end."""
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    populate(url, 200)
    killed = Command(tmp_path, "killed", ["advance", "--due", "--at", AT.isoformat()], environment(tmp_path, url, "killed"))
    killed.wait_for(lambda: count(url, "select count(*) from decision") > 0, "first batch written")
    assert any("end_with_parent" in p and "create_app" in p for p in session_processes(killed.process.pid))  # the server, apart
    killed.interrupt(signal.SIGKILL, group=False)
    assert killed.left_behind(grace=15) == []
