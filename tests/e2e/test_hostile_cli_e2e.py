"""A hostile file given to `pathways facts add` (a command that starts Prefect, in a new process):
exit status 1, the file and the fix named, nothing stored (the rest is in
tests/unit/test_hostile_cli.py)."""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import FIXTURES, run_cli

from test_hostile_cli import environment, refused, stored


@pytest.mark.slow
def test_facts_add_refuses_a_bundle_entry_without_a_resource_type_and_stores_nothing(tmp_path):
    bundle = json.loads(gzip.decompress((FIXTURES / "fhir" / "synthea" / "dm_casimira.json.gz").read_bytes()))
    bundle["entry"].insert(3, {"fullUrl": "urn:uuid:x", "resource": {"id": "x", "status": "final"}})
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    done = run_cli("facts", "add", "pt-hostile-2", "--fhir", str(path), "--enroll", "diabetes", env=environment(tmp_path))
    refused(done, f'error: {path}: Bundle.entry[3].resource: not a FHIR resource (no resourceType); add one, e.g. "resourceType": "Observation"')
    assert stored(tmp_path) == {}
