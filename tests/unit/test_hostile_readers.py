"""Every reader of user files, fed generated malformed, deeply nested, truncated and oversized
documents, ends in the project's own error (or a result) and never in another exception, with
its memory bounded (tracemalloc peak) and its time bounded (hypothesis deadline per example).
The limits are those of pathways.facts.jsonread and pathways.definition.yamlsource."""

from __future__ import annotations

import gzip
import itertools
import json
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from pathways.definition.interactions import read_interactions
from pathways.definition.loader import load_document
from pathways.definition.yamlsource import read_yaml
from pathways.errors import ProblemsFound
from pathways.facts import jsonread
from pathways.facts.fhir import BulkError, FhirError, load_fhir, read_ndjson
from pathways.facts.jsonread import JsonFileError, read_json
from pathways.facts.load import PatientFileError, load_bulk_export, load_facts_json, load_fhir_file, load_patient_file
from pathways.rules.cases import load_cases

OURS = (PatientFileError, FhirError, BulkError, JsonFileError, ProblemsFound)
PEAK_BYTES = 40_000_000  # far above what a document of a few kB needs, far below a runaway
HOSTILE = settings(
    max_examples=100,
    deadline=timedelta(seconds=5),  # per example; generous for a shared machine, far below a runaway
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Imports and model classes the readers load on first use are not the document's memory.
load_fhir(FIXTURES / "fhir" / "synthea" / "dm_casimira.json.gz")

# -- generated documents ------------------------------------------------------------------
KEYS = st.sampled_from([
    "resourceType", "entry", "resource", "id", "subject", "reference", "code", "coding", "system",
    "valueQuantity", "value", "unit", "status", "effectiveDateTime", "birthDate", "gender",
    "component", "patient", "observations", "conditions", "demographics", "fact", "at", "birth_date",
]) | st.text(max_size=8)
TYPES = st.sampled_from(["Bundle", "Patient", "Observation", "Condition", "MedicationRequest", "Claim", "", "1x"])
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | TYPES
    | st.sampled_from(["Patient/1", "2024-02-30", "2020-01-01", "final", "http://loinc.org", "mmol/mol"])
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5), max_leaves=25)
RESOURCE = st.fixed_dictionaries({"resourceType": TYPES}, optional={"id": SCALARS, "subject": VALUES, "code": VALUES, "valueQuantity": VALUES, "status": SCALARS})
ENTRY = st.fixed_dictionaries({"resource": RESOURCE}) | st.fixed_dictionaries({}, optional={"resource": VALUES}) | VALUES
BUNDLE = st.fixed_dictionaries({"resourceType": st.just("Bundle"), "entry": st.lists(ENTRY, min_size=1, max_size=5) | VALUES})
FACTS = st.fixed_dictionaries({"patient": SCALARS}, optional={"demographics": VALUES, "observations": VALUES, "conditions": VALUES})
DOCUMENTS = VALUES | RESOURCE | BUNDLE | FACTS


def _nested(depth: int, kind: str) -> bytes:
    opening, closing = {"list": (b"[", b"]"), "object": (b'{"a":', b"}"), "entry": (b'{"resourceType":"Bundle","entry":[{"resource":', b"}]}")}[kind]
    return opening * depth + b"1" + closing * depth


@st.composite
def json_bytes(draw) -> bytes:
    """A JSON document, maybe spoiled: cut off, with bytes changed, or nested very deep."""
    how = draw(st.sampled_from(["whole", "bundle", "bundle", "cut", "spoiled", "deep", "noise"]))
    if how == "bundle":
        return json.dumps(draw(BUNDLE)).encode()
    if how == "deep":
        return _nested(draw(st.integers(jsonread.MAX_DEPTH - 2, 3000)), draw(st.sampled_from(["list", "object", "entry"])))
    if how == "noise":
        return draw(st.binary(max_size=200))
    raw = json.dumps(draw(DOCUMENTS)).encode()  # allow_nan: NaN and Infinity appear, as in the wild
    if how == "cut":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if how == "spoiled":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


@st.composite
def patient_file(draw) -> tuple[str, bytes]:
    """(file name, bytes): JSON, gzip (whole, cut or corrupt) or XML."""
    kind = draw(st.sampled_from(["json", "gz", "xml"]))
    if kind == "xml":
        depth = draw(st.integers(0, 400))
        body = b"<Bundle xmlns='http://hl7.org/fhir'>" + b"<entry><resource>" * depth + draw(st.binary(max_size=40)) + b"</resource></entry>" * depth
        return "bundle.xml", body[: draw(st.integers(1, len(body)))] if draw(st.booleans()) else body + b"</Bundle>"
    raw = draw(json_bytes())
    if kind == "json":
        return "patient.json", raw
    packed = gzip.compress(raw)
    damage = draw(st.sampled_from(["none", "cut", "corrupt"]))
    if damage == "cut":
        packed = packed[: draw(st.integers(0, len(packed) - 1))]
    elif damage == "corrupt":
        at = draw(st.integers(10, len(packed) - 1))
        packed = packed[:at] + bytes([packed[at] ^ 0xFF]) + packed[at + 1 :]
    return "bundle.json.gz", packed


def _bounded(call, *args):
    """Run a reader: its own error or a result, never anything else, within PEAK_BYTES."""
    tracemalloc.start()
    try:
        call(*args)
    except OURS as exc:
        assert str(exc).strip(), "an error without a message"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{call.__name__} used {peak} bytes"


_names = itertools.count()


def _write(folder: Path, name: str, raw: bytes) -> Path:
    path = folder / str(next(_names)) / name
    path.parent.mkdir()
    path.write_bytes(raw)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


# -- the properties -----------------------------------------------------------------------
@HOSTILE
@given(document=patient_file())
def test_patient_file_readers_end_in_their_own_error(folder, document):
    name, raw = document
    path = _write(folder, name, raw)
    for reader in (load_patient_file, load_fhir_file, load_fhir):
        _bounded(reader, path)
    if name.endswith(".json"):
        _bounded(load_facts_json, path)
        _bounded(read_json, path)


@HOSTILE
@given(bundle=BUNDLE)
def test_bundles_of_odd_entries_end_in_their_own_error(folder, bundle):
    path = _write(folder, "bundle.json", json.dumps(bundle).encode())
    _bounded(load_fhir, path)
    _bounded(load_patient_file, path)


@HOSTILE
@given(lines=st.lists(json_bytes() | st.builds(lambda r: json.dumps(r).encode(), RESOURCE), min_size=1, max_size=6))
def test_bulk_export_readers_end_in_their_own_error(folder, lines):
    path = _write(folder, "Observation.ndjson", b"\n".join(line.replace(b"\n", b" ") for line in lines))
    _bounded(read_ndjson, [path])
    _bounded(load_bulk_export, [path])


@st.composite
def yaml_text(draw) -> bytes:
    """A YAML document, maybe spoiled, with odd tags, impossible dates, or nested very deep."""
    how = draw(st.sampled_from(["whole", "cut", "spoiled", "deep", "tags"]))
    if how == "deep":
        depth = draw(st.integers(60, 3000))
        return draw(st.sampled_from([b"[" * depth + b"]" * depth, b"{a: " * depth + b"1" + b"}" * depth, b"- &a [*a]\n"]))
    if how == "tags":
        tag = draw(st.sampled_from(["!!int", "!!float", "!!bool", "!!timestamp", "!!binary", "!!python/object", "!!set", "!!omap", ""]))
        value = draw(st.sampled_from(["abc", "2026-13-01", "9" * 5000, "[a, b]", "{a: 1}", "yes", "'x'"]))
        return f"cases:\n  - id: c1\n    at: {tag} {value}\n".encode()
    raw = yaml.safe_dump(draw(DOCUMENTS), allow_unicode=True).encode()
    if how == "cut":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if how == "spoiled":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


@HOSTILE
@given(raw=yaml_text())
def test_yaml_readers_report_problems_and_raise_nothing_else(folder, raw):
    path = _write(folder, "cases.yaml", raw)
    tracemalloc.start()
    try:
        read_yaml(path)  # returns problems: these raise nothing at all
        load_document(path)
        read_interactions(path)
        with pytest.raises(ProblemsFound) if raw.startswith((b"[", b"{a", b"- &")) else _maybe(ProblemsFound):
            load_cases(path)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < PEAK_BYTES


class _maybe:
    """Like pytest.raises, but also content when nothing is raised."""

    def __init__(self, kind):
        self.kind = kind

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is None or issubclass(kind, self.kind)


# -- the limits themselves, one case each ------------------------------------------------
def test_deep_json_is_refused_at_its_place_with_the_limit(tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(b'{"patient": "p1",\n "observations": ' + _nested(5000, "list") + b"}")
    with pytest.raises(JsonFileError) as info:
        read_json(path)
    column = len(' "observations": ') + jsonread.MAX_DEPTH  # the object is level 1: this bracket is level 65
    assert str(info.value) == (
        f"{path}:2:{column}: the JSON nests deeper than {jsonread.MAX_DEPTH} levels; "
        "check that this is the file you meant: nothing pathways reads nests this deep"
    )


def test_json_at_the_depth_limit_is_read(tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(_nested(jsonread.MAX_DEPTH, "list"))
    assert read_json(path) is not None
    path.write_bytes(_nested(jsonread.MAX_DEPTH + 1, "list"))
    with pytest.raises(JsonFileError, match="nests deeper"):
        read_json(path)


def test_a_file_over_the_size_limit_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonread, "MAX_DOCUMENT_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_bytes(b"[" + b"1," * 600 + b"1]")
    with pytest.raises(JsonFileError) as info:
        jsonread.read_json(path, jsonread.MAX_DOCUMENT_BYTES)
    assert str(info.value) == (
        f"{path}: the file is 1203 bytes, over the 1000 bytes limit for a patient file; "
        "check that this is the file you meant; a larger FHIR export can be given as bulk-data NDJSON"
    )


def test_gzip_bomb_is_stopped_at_the_limit_without_expanding_it(tmp_path):
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(gzip.compress(b" " * (jsonread.MAX_DOCUMENT_BYTES + 10)))
    tracemalloc.start()
    try:
        with pytest.raises(JsonFileError, match="expands to more than the 50.0 MB limit"):
            read_json(path)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 2 * jsonread.MAX_DOCUMENT_BYTES + 10_000_000


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda packed: packed[: len(packed) // 2], "the gzip file is truncated (it ends before its data does); copy or download it again"),
        (lambda packed: packed[:2] + b"\x09" + packed[3:], "not a valid gzip file (Unknown compression method); give the file uncompressed, or compress it again with gzip"),
        (lambda packed: packed[:-8], "the gzip file is truncated"),
    ],
)
def test_truncated_or_corrupt_gzip_is_a_clear_error(tmp_path, damage, message):
    path = tmp_path / "bundle.json.gz"
    path.write_bytes(damage((FIXTURES / "fhir" / "synthea" / "dm_casimira.json.gz").read_bytes()))
    with pytest.raises(PatientFileError) as info:
        load_patient_file(path)
    assert info.value.problems[0].startswith(f"{path}: ") and message in info.value.problems[0]


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"resource": {"id": "o1", "status": "final"}}, 'Bundle.entry[1].resource: not a FHIR resource (no resourceType); add one, e.g. "resourceType": "Observation"'),
        (5, "Bundle.entry[1]: an entry must be an object with a resource, not a number"),
        ({"resource": ["Observation"]}, "Bundle.entry[1].resource: not a FHIR resource: a list instead of an object with a resourceType"),
        ({"resource": {"resourceType": {"a": 1}}}, "Bundle.entry[1].resource: resourceType must be the name of a FHIR resource type, not an object"),
    ],
)
def test_bundle_entries_we_cannot_read_are_named(tmp_path, entry, message):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "entry": [{"request": {"method": "GET"}}, entry]}))
    with pytest.raises(FhirError) as info:
        load_fhir(path)
    assert str(info.value) == f"{path}: {message}"


def test_ndjson_line_over_the_limit_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonread, "MAX_LINE_BYTES", 100)
    path = tmp_path / "Patient.ndjson"
    path.write_bytes(b'{"resourceType": "Patient", "id": "a"}\n' + b"[" * 1000 + b"\n" + b'{"resourceType": "Patient", "id": "b", "x": NaN}\n')
    with pytest.raises(BulkError) as info:
        read_ndjson([path])
    assert [str(p) for p in info.value.problems] == [
        f"{path}:2: the line is over the 100 bytes limit for one resource; check that this is a FHIR bulk-data export (one resource per line)",
        f"{path}:3: NaN is not a JSON value; write a number, or leave the value out",
    ]


def test_fhir_xml_with_a_doctype_is_refused_before_any_entity_is_read(tmp_path):
    path = tmp_path / "observation.xml"
    path.write_text('<?xml version="1.0"?>\n<!DOCTYPE Observation [<!ENTITY a "x">]>\n'
                    '<Observation xmlns="http://hl7.org/fhir"><id value="&a;"/><status value="final"/></Observation>')
    with pytest.raises(FhirError) as info:
        load_fhir(path)
    assert str(info.value) == f"{path}: the XML declares a DOCTYPE, which FHIR XML must not have; remove the <!DOCTYPE ...> part"


def test_a_bulk_export_full_of_bad_lines_is_reported_up_to_the_limit(tmp_path):
    path = tmp_path / "Observation.ndjson"
    path.write_text("{bad\n" * (jsonread.MAX_PROBLEMS + 30))
    with pytest.raises(BulkError) as info:
        read_ndjson([path])
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == jsonread.MAX_PROBLEMS + 1
    assert problems[0] == f"{path}:1:2: malformed JSON: Expecting property name enclosed in double quotes; object keys are written in double quotes, and a trailing comma is not allowed"
    assert problems[-1] == f"{path}:{jsonread.MAX_PROBLEMS + 1}: stopped reading here after {jsonread.MAX_PROBLEMS} problems; fix these and give the export again"


def test_a_key_given_twice_is_refused_not_silently_the_last(tmp_path):
    path = tmp_path / "patient.json"
    path.write_text('{"patient": "p1", "observations": [{"fact": "potassium_mmol_l", "value": 4.1, "value": 6.9, "at": "2026-01-02"}]}')
    with pytest.raises(PatientFileError) as info:
        load_facts_json(path)
    assert info.value.problems == [f"{path}: an object has the key 'value' twice; keep one (which of the two values counts is not clear)"]
