"""Orchestration without starting Prefect: enrolment refusing unusable values, side-by-side runs,
the embedded server's client (busy answers, TLS, CSRF), artifacts and batches, simulation (the
commands through Prefect are in tests/e2e/test_orchestration.py)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3

from conftest import run_cli

from test_orchestration import PATIENT, environment


def test_enrolling_a_file_with_a_value_the_pathway_cannot_use_stores_nothing(tmp_path):
    """`pathways enroll` refuses the values `pathways evaluate` refuses as unusable: a value of the
    wrong kind, an unknown unit; the file and the field are named, nothing is stored."""
    facts = tmp_path / "pt-orch-5.json"
    observations = [{"fact": "hba1c_mmol_mol", "value": "high", "at": "2025-12-01"},
                     {"fact": "hba1c_mmol_mol", "value": 61, "unit": "furlongs", "at": "2025-12-02"}]
    facts.write_text(json.dumps({**PATIENT, "patient": "pt-orch-5", "observations": observations}), encoding="utf-8")
    env = environment(tmp_path)
    done = run_cli("enroll", "pt-orch-5", "--pathway", "diabetes", "--facts", str(facts), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"error: {facts}: observations[0]: hba1c_mmol_mol: expected a number, got 'high'", lines
    assert lines[1].startswith(f"error: {facts}: observations[1]: ") and "furlongs" in lines[1], lines
    assert lines[2] == "error: 2 problems in the patient file; nothing stored, not enrolled", lines
    evaluated = run_cli("evaluate", "diabetes", "--facts", str(facts), env=env)  # the same problems, the same words
    assert evaluated.returncode == 1 and lines[0] in evaluated.stderr and lines[1] in evaluated.stderr
    store = sqlite3.connect(tmp_path / "store.db")
    assert store.execute("select count(*) from patient").fetchone() == (0,)
    assert store.execute("select count(*) from fact").fetchone() == (0,)
    assert store.execute("select count(*) from enrollment").fetchone() == (0,)
    # mended, the same file enrols
    facts.write_text(json.dumps({**PATIENT, "patient": "pt-orch-5", "observations": [{**observations[0], "value": 61, "unit": "mmol/mol"}]}), encoding="utf-8")
    done = run_cli("enroll", "pt-orch-5", "--pathway", "diabetes", "--facts", str(facts), env=env)
    assert done.returncode == 0 and done.stdout.startswith("enrolled: diabetes-"), done.stderr


def test_side_by_side_runs_are_created_in_turn_and_begin_once_created():
    """Runs started side by side, and the escalation subflows they open, are created one at a time
    (Prefect's embedded server on SQLite answers concurrent creations with "database is locked"),
    in the caller's context; each run begins its batches as soon as it exists, without waiting
    for the others; a run that fails before it begins lets the next one be created."""
    import contextvars
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from pathways.orchestration import turns

    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    submitter = contextvars.ContextVar("submitter", default=None)
    submitter.set("the caller's settings")  # e.g. Prefect's settings context: the runs see the caller's

    def note(name: str, event: str) -> None:
        with lock:
            log.append((name, event, time.monotonic()))

    def fake_subflow(name: str) -> None:
        note(name, "create")
        time.sleep(0.05)
        note(name, "created")
        turns.created()  # what the escalation subflow's body does first

    def fake_run(name: str, fail: bool = False) -> str:
        assert submitter.get() == "the caller's settings"
        note(name, "create")
        time.sleep(0.05)  # creating the flow run
        if fail:
            raise RuntimeError("creation failed")
        note(name, "created")
        turns.created()  # what a pathway run's body does first
        note(name, "batches")
        # as an escalation opens its subflow from the run's body, in a thread with the run's context
        opener = threading.Thread(target=contextvars.copy_context().run, args=(turns.TOGETHER.get().run, fake_subflow, f"{name}-sub"))
        opener.start()
        time.sleep(0.3)  # the batches
        opener.join()
        return name

    together = turns.Together()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(turns.in_turn(together, fake_run, name)) for name in ("a", "b", "c")]
    assert sorted(f.result() for f in futures) == ["a", "b", "c"]
    creations = sorted((t, event) for _, event, t in log if event in ("create", "created"))
    assert [event for _, event in creations] == ["create", "created"] * 6  # three runs, three subflows: never two creations at once
    first_batches = min(t for _, event, t in log if event == "batches")
    last_created = max(t for name, event, t in log if event == "created" and "-" not in name)
    assert first_batches < last_created  # the first run did not wait for the others' creation

    log.clear()
    together = turns.Together()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(turns.in_turn(together, fake_run, name, name == "a")) for name in ("a", "b", "c")]
    outcomes = sorted(repr(f.exception()) if f.exception() else f.result() for f in futures)
    assert outcomes == ["RuntimeError('creation failed')", "b", "c"]
    assert not together.creating.locked()
    assert turns.TOGETHER.get() is None  # the caller's context is left as it was


def test_the_embedded_servers_busy_answer_is_retried_at_once(monkeypatch):
    """Prefect's embedded server answers 503 when SQLite refuses a write ("database is locked");
    Prefect's client would wait 2 s, then 4, before trying again. On the embedded server it
    tries again after about 1/16 s, then twice as long each time, ten times (about a minute in
    all); with a real server (PREFECT_API_URL) Prefect's own waits apply."""
    import types

    import httpx

    from pathways.orchestration import prefect_edge

    prefect_edge.configure()  # installs the quick retries
    import prefect.client.base as base
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    waits: list[float] = []
    monkeypatch.setattr(base, "time", types.SimpleNamespace(sleep=waits.append))

    def busy_then_ok(busy: int):
        answers = iter([503] * busy + [200])
        client = base.PrefectHttpxSyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(next(answers))),
                                             base_url="http://127.0.0.1:1/api")
        return client.get("/flow_runs/x")

    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 10}):
        assert busy_then_ok(2).status_code == 200
        assert len(waits) == 2 and all(wait < 0.2 for wait in waits)  # 1/16 and 1/8 s, with Prefect's jitter
        waits.clear()
        assert busy_then_ok(10).status_code == 200
        assert 30 < sum(waits) < 100 and waits[-1] > 16  # the same patience as Prefect's own back-off
        waits.clear()
        with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}):
            assert busy_then_ok(2).status_code == 200
        assert len(waits) == 2 and waits[0] > 1 and waits[1] > 3  # a real server: Prefect's 2 s and 4 s


def test_prefects_api_clients_share_one_tls_context_per_ca_file(tmp_path):
    """Prefect builds a TLS context (loading the whole CA bundle) for every API client; pathways
    builds it once per CA file and shares it. A changed or different CA file gets a context of
    its own, and Prefect's unverified context (PREFECT_API_TLS_INSECURE_SKIP_VERIFY) stays its own."""
    import shutil
    import ssl

    import certifi

    from pathways.orchestration import prefect_edge

    prefect_edge.configure()  # shares the contexts
    import prefect.client.orchestration as orchestration
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

    def context(client):
        return client._client._transport._pool._ssl_context

    first, second = (orchestration.SyncPrefectClient("http://127.0.0.1:1/api") for _ in range(2))
    assert context(first) is context(second)
    assert context(first).verify_mode == ssl.CERT_REQUIRED and context(first).check_hostname
    assert context(orchestration.PrefectClient("http://127.0.0.1:1/api")) is context(first)  # the async client too

    bundle = tmp_path / "ca.pem"
    shutil.copy(certifi.where(), bundle)
    with temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(bundle)}):
        own = context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api"))
        assert own is not context(first) and own.verify_mode == ssl.CERT_REQUIRED
        assert context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api")) is own
        bundle.write_bytes(bundle.read_bytes() + b"\n")  # changed on disk: read again
        assert context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api")) is not own

    with temporary_settings(updates={PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        insecure = [context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api")) for _ in range(2)]
        assert insecure[0] is not insecure[1] and insecure[0].verify_mode == ssl.CERT_NONE
    assert context(orchestration.SyncPrefectClient("http://127.0.0.1:1/api")).verify_mode == ssl.CERT_REQUIRED


def test_the_client_asks_the_embedded_server_for_csrf_tokens_only_when_it_is_protected():
    """Prefect's embedded server does not check CSRF tokens unless told to; its clients then skip
    asking for one (each new client's request was refused). A server told to check them gets them."""
    from pathways.orchestration.prefect_edge import _no_csrf_tokens_unless_protected

    for protection in (None, "false", "0", ""):
        environ = {} if protection is None else {"PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": protection}
        _no_csrf_tokens_unless_protected(environ)
        assert environ.get("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED") == "false", protection
    for name in ("PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", "PREFECT_SERVER_CSRF_PROTECTION_ENABLED"):
        for protection in ("true", "True", "1", "on"):
            environ = {name: protection}
            _no_csrf_tokens_unless_protected(environ)
            assert "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED" not in environ, (name, protection)
    environ = {"PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "true"}  # the user's own choice stays
    _no_csrf_tokens_unless_protected(environ)
    assert environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] == "true"


def test_a_large_runs_escalations_artifact_counts_them_all_and_lists_the_first():
    """Thousands of escalations (a cohort's first review) make an artifact of counts per step and
    the first ESCALATIONS_LISTED enrollments, pointing to the audit trail for the rest; a small
    run's artifact lists every one."""
    from pathways.orchestration.flows import ESCALATIONS_LISTED, escalations_markdown

    escalated = [(f"enr-{i:05d}", "hyperkaliemie" if i % 3 else "decompensatie") for i in range(ESCALATIONS_LISTED + 57)]
    table = escalations_markdown(escalated, "heartfailure", "2026-11-01")
    per_step = {"hyperkaliemie": sum(1 for _, s in escalated if s == "hyperkaliemie"), "decompensatie": sum(1 for _, s in escalated if s == "decompensatie")}
    assert f"| decompensatie | {per_step['decompensatie']} |" in table and f"| hyperkaliemie | {per_step['hyperkaliemie']} |" in table
    listed = re.findall(r"^\| (enr-\d+) \| ", table, flags=re.M)
    assert listed == [e for e, _ in escalated[:ESCALATIONS_LISTED]]
    assert "57 more not listed here" in table
    assert "`pathways audit log --action escalation.opened --pathway heartfailure --since 2026-11-01`" in table

    small = escalations_markdown(escalated[:3], "heartfailure", "2026-11-01")
    assert re.findall(r"^\| (enr-\d+) \| ", small, flags=re.M) == ["enr-00000", "enr-00001", "enr-00002"]
    assert "more not listed" not in small


def test_a_batch_reaches_its_task_as_one_object():
    """A batch task's enrollment ids travel as one Batch object: Prefect's walk over a task's inputs
    (looking for futures, item by item in a list) sees the one object and passes it on as it is,
    its ids unchanged and in order. (A run through batch tasks: the escalation test above.)"""
    from prefect.utilities.collections import visit_collection

    from pathways.orchestration.flows import Batch

    ids = [f"enr-{i}" for i in range(1000)]
    seen = []
    batch = Batch(ids)
    assert visit_collection(batch, visit_fn=lambda item: seen.append(item) or item, return_data=True) is batch
    assert len(seen) == 1 and seen[0] is batch and batch.enrollments == ids and repr(batch) == "Batch(1000 enrollments)"


def test_simulate_summarises_every_patient_and_names_a_file_it_cannot_use(tmp_path):
    """`pathways simulate` stores nothing and fast-forwards each patient; a file with a value the
    pathway cannot use is named with the value's field and left out (as `run` and `evaluate` do),
    the others are simulated and the exit status says one failed."""
    from conftest import ROOT

    cohort = tmp_path / "cohort"
    shutil.copytree(ROOT / "examples" / "cohort-diabetes", cohort)
    unusable = {"fact": "hba1c_mmol_mol", "value": "high", "at": "2025-12-01"}
    (cohort / "zz-unusable.json").write_text(json.dumps({**PATIENT, "patient": "pt-orch-6", "observations": [unusable]}), encoding="utf-8")
    env = environment(tmp_path)
    done = run_cli("simulate", "diabetes", "--patients", str(cohort), "--months", "6", env=env)
    assert done.returncode == 1, done.stderr
    assert "error: zz-unusable.json: observations[0]: hba1c_mmol_mol: expected a number, got 'high'; not simulated" in done.stderr
    simulated = {json.loads(path.read_text(encoding="utf-8"))["patient"] for path in cohort.glob("demo-*.json")}
    assert all(patient in done.stdout for patient in simulated) and "pt-orch-6" not in done.stdout
    assert not (tmp_path / "store.db").exists()  # stores nothing
