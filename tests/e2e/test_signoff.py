"""A short sign-off waits inside a Prefect flow run (paused with typed input) and continues the
enrollment when resumed; both outcomes are audited with who signed off. Runs on Prefect's
embedded server in this process: the flow waits in a thread, the test resumes it."""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow  # Prefect's embedded server and a paused flow run

PATIENT = {
    "patient": "pt-signoff-1",
    "demographics": {"birth_date": "1947-08-19", "sex": "female"},
    "conditions": [{"fact": "hf_diagnosis", "onset": "2020-01-01"}],
    "observations": [{"fact": "potassium_mmol_l", "value": 5.87, "unit": "mmol/L", "at": "2026-01-02"}],
}


def test_a_paused_sign_off_records_the_escalation(tmp_path, monkeypatch):
    env = {"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "PREFECT_HOME": str(tmp_path / "prefect"),
           "PATHWAYS_TODAY": "2026-01-05", "PATHWAYS_ROLE": "", "PATHWAYS_TOKEN_FILE": "", "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    facts = tmp_path / "p.json"
    facts.write_text(json.dumps(PATIENT), encoding="utf-8")
    enrollment = run_cli("enroll", "pt-signoff-1", "--pathway", "heartfailure", "--facts", str(facts), env=env).stdout.split()[1]
    advanced = run_cli("advance", enrollment, env=env)
    assert "1 escalated" in advanced.stdout, advanced.stderr[-2000:]
    not_open = run_cli("signoff", enrollment, "intake_poh", env=env)
    assert not_open.returncode == 1 and not_open.stderr.strip() == f"error: 'intake_poh' is not an open escalation of {enrollment} (open: hyperkaliemie)"

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from prefect import resume_flow_run
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from pathways.orchestration import prefect_edge
    from pathways.orchestration.flows import signoff

    prefect_edge.configure()

    def sign_off(outcome: str, check_typed: bool = False) -> str:
        outcomes: list = []
        worker = threading.Thread(target=lambda: outcomes.append(signoff(enrollment, "hyperkaliemie", timeout=120, poll_interval=1)))
        worker.start()
        paused = None
        deadline = time.monotonic() + 90
        while paused is None and time.monotonic() < deadline:
            time.sleep(0.5)
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"signoff-{enrollment}-hyperkaliemie"])))
            paused = next((r for r in runs if r.state and r.state.is_paused()), None)
        assert paused is not None, "the sign-off flow run never paused"
        if check_typed:  # the input is typed: an outcome it does not know is refused
            with pytest.raises(Exception):
                resume_flow_run(paused.id, run_input={"signed_off_by": "huisarts-7", "outcome": "misschien"})
        resume_flow_run(paused.id, run_input={"signed_off_by": "huisarts-7", "outcome": outcome})
        worker.join(timeout=90)
        assert outcomes == [outcome]
        return str(paused.id)

    try:
        # the embedded server started once, here: when the flow's thread and the polling below start it at the same time,
        # Prefect starts two server processes and stops only one (the other was left running), or fails ("did not start")
        with get_client(sync_client=True) as client:
            client.api_healthcheck()
        sign_off("niet akkoord", check_typed=True)
        assert "open escalation hyperkaliemie" in run_cli("status", enrollment, env=env).stdout  # declined: still open
        run_id = sign_off("akkoord")
    finally:  # stop the embedded server this process started now, not at exit when its log stream is gone
        prefect_edge.stop_embedded_server()  # the runs' last log lines and events sent first

    status = run_cli("status", enrollment, env=env)
    assert "open escalation hyperkaliemie" not in status.stdout
    trail = json.loads(run_cli("audit", "log", "--enrollment", enrollment, "--json", env=env).stdout)
    recorded = [e for e in trail if e["action"] == "input.recorded"]
    assert len(recorded) == 1 and recorded[0]["payload"]["signed_off_by"] == "huisarts-7" and recorded[0]["payload"]["outcome"] == "akkoord"
    assert recorded[0]["payload"]["context"]["prefect_flow_run"] == run_id
    declined = [e for e in trail if e["action"] == "signoff.declined"]
    assert len(declined) == 1 and declined[0]["payload"]["signed_off_by"] == "huisarts-7"
    assert [e["payload"]["step"] for e in trail if e["action"] == "step.done"] == ["hyperkaliemie"]
    story = run_cli("audit", "timeline", enrollment, env=env).stdout
    assert "Kalium te hoog: niet akkoord van huisarts-7; blijft open" in story
    assert "(akkoord van huisarts-7)" in story
