"""After a step is recorded in the web application, the enrollment is advanced through Prefect:
one embedded server started with the application (its lifespan) and kept warm, stopped at
shut-down. When Prefect fails, the step stays recorded and the page says the advance is pending."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from pathways.clock import FixedClock
from pathways.web import WebSettings, create_app
from test_web import csrf_of, entries, log_in
from web_setup import TODAY, seed

pytestmark = pytest.mark.slow  # starts Prefect's embedded server


@pytest.fixture
def app(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", url)  # the store the flow runs open
    monkeypatch.setenv("PATHWAYS_IDENTITY_SECRET", "s" * 32)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))  # the embedded server's database: this test's own
    enrollment = seed(url)
    return create_app(WebSettings(database_url=url, secret_key="k" * 40, clock=FixedClock.on(TODAY))), enrollment, url


INTAKE = {"out.body_weight_kg": "82", "unit.body_weight_kg": "kg", "out.systolic_bp_mmhg": "138", "out.diastolic_bp_mmhg": "84",
          "out.smoking_status": "never"}
LABORATORY = {"out.hba1c_mmol_mol": "60", "out.fasting_glucose_mmol_l": "8", "out.egfr_ml_min_1_73m2": "75", "out.creatinine_umol_l": "80",
              "out.potassium_mmol_l": "4.5", "out.acr_mg_mmol": "1"}

ANAMNESIS = {"out.treatment_step": "leefstijl", "out.frail": "false", "out.complaint_free": "true"}


def _record(client: TestClient, enrollment: str, step: str, values: dict[str, str]):
    path = f"/enrollments/{enrollment}/steps/{step}/record"
    return client.post(path, data={**values, "csrf": csrf_of(client.get(path).text)})


def _flow_runs(enrollment: str) -> list[tuple[str, list[str]]]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [(run.name, run.parameters.get("enrollments")) for run in client.read_flow_runs()
                if enrollment in (run.parameters.get("enrollments") or [])]


def test_a_recorded_step_is_advanced_through_the_warm_server_and_is_pending_when_prefect_fails(app):
    from prefect.server.api.server import SubprocessASGIServer
    from sqlalchemy import create_engine

    app, enrollment, url = app
    with TestClient(app) as client:  # the lifespan starts the embedded server, in the background
        warm = app.state.prefect
        starting = warm._starting.is_alive()
        assert client.get("/login").status_code == 200  # pages are served while it starts (10-30 s)
        assert starting and not warm.started
        log_in(client, "poh-anna")

        page = _record(client, enrollment, "intake_poh", INTAKE)  # waits for the start
        server = SubprocessASGIServer()
        assert warm.started and server.running and server.server_process.poll() is None
        process = server.server_process
        assert page.status_code == 200
        assert re.search(r'id="notice"[^>]*>Recorded intake_poh; the enrollment was advanced through Prefect\.', page.text)
        assert _flow_runs(enrollment) == [(f"diabetes-{TODAY.isoformat()}-n1", [enrollment])]  # one run of its pathway, ids only
        assert server.server_process is process  # the same server, kept warm

        process.terminate()  # Prefect goes away behind the application's back
        process.wait(timeout=30)
        page = _record(client, enrollment, "laboratorium_start", LABORATORY)
        assert page.status_code == 200
        assert "Recorded laboratorium_start; the advance through Prefect is pending" in page.text
        assert "the daily run will advance this enrollment" in page.text
        assert '<td class="status">done</td>' in re.search(r'<tr id="step-laboratorium_start".*?</tr>', page.text, re.S).group(0)
        assert not warm.started  # noticed: the server is gone

        warm.retry_after = 0  # (60 s by default) the next advance starts the embedded server again
        page = _record(client, enrollment, "anamnese_poh", ANAMNESIS)
        assert "Recorded anamnese_poh; the enrollment was advanced through Prefect." in page.text, page.text[-3000:]
        server = SubprocessASGIServer()  # a new one
        assert warm.started and server.running and server.server_process.poll() is None and server.server_process is not process
    # shut down: the lifespan stopped the server
    assert not server.running and server.server_process is None
    engine = create_engine(url)
    try:
        recorded = [e["payload"]["step"] for e in entries(engine, action="input.recorded", enrollment=enrollment)]
    finally:
        engine.dispose()
    assert recorded[-3:] == ["intake_poh", "laboratorium_start", "anamnese_poh"]  # all stored, the second despite Prefect


def test_without_prefect_started_the_advance_is_pending_and_the_step_is_recorded(app):
    app, enrollment, _ = app
    client = TestClient(app)  # no lifespan: Prefect not started
    log_in(client, "poh-anna")
    page = _record(client, enrollment, "intake_poh", INTAKE)
    assert "Recorded intake_poh; the advance through Prefect is pending" in page.text
    assert '<td class="status">done</td>' in re.search(r'<tr id="step-intake_poh".*?</tr>', page.text, re.S).group(0)


def test_stopped_while_the_embedded_server_starts_the_application_ends_at_once_and_leaves_no_server(app):
    """Ctrl-C in the first seconds of `pathways web`: the server being started is stopped, not
    waited for (10-30 s)."""
    import time

    from prefect.server.api.server import SubprocessASGIServer

    app, _, _ = app
    with TestClient(app) as client:
        assert client.get("/login").status_code == 200
        warm = app.state.prefect
        assert warm._starting.is_alive()
        time.sleep(1)  # (the server's process is being started)
        begun = time.monotonic()
    took = time.monotonic() - begun  # the lifespan's end: stop()
    assert not warm._starting.is_alive() and not warm.started
    assert warm.problem, "the start ran to its end: the stop waited for it"  # (cut short: ~0.1 s; waited for: 7 s here)
    assert took < 10, f"the stop took {took:.1f} s"
    assert all(server.server_process is None for server in SubprocessASGIServer._instances.values())
