"""Hypothesis-generated valid definitions pass every check and survive load -> dump -> reload."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pathways.definition.checks import check_pathway
from pathways.definition.dump import dump_yaml, to_data
from pathways.definition.loader import load_document
from pathways.definition.model import DISCIPLINES, STAGES, PathwaySpec

KEYWORDS = {"and", "or", "not", "in", "true", "false"}
ident = st.from_regex(r"[a-z][a-z0-9_]{2,12}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
# text that YAML must quote or escape: colons, commas, quotes, '#', leading dashes, "yes", digits, Dutch letters
text = st.text(alphabet=st.sampled_from(list("abcdeëïéz XYZ019:,-#'\"{}[]&*!|>%@`")), min_size=1, max_size=24).filter(lambda t: t.strip())
UNITS = ["kg", "mmol/mol", "mmol/L", "%", "mL/min/{1.73_m2}", "mm[Hg]", "a"]


@st.composite
def facts(draw):
    names = draw(st.lists(ident, min_size=2, max_size=6, unique=True))
    result = {}
    for name in names:
        kind = draw(st.sampled_from(["quantity", "count", "boolean", "code", "date", "text"]))
        fact = {"type": kind, "title": draw(text), "source": draw(st.sampled_from(["observation", "condition", "recorded", "demographic", "event"]))}
        if kind == "quantity":
            fact["unit"] = draw(st.sampled_from(UNITS))
            if draw(st.booleans()):
                low = draw(st.integers(0, 50))
                fact["range"] = [low, low + draw(st.integers(1, 500))]
        if kind == "code":
            fact["values"] = draw(st.lists(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), min_size=1, max_size=4, unique=True))
        if draw(st.booleans()):
            fact["codes"] = [{"system": draw(st.sampled_from(["loinc", "snomed", "icpc", "nhg45"])), "code": draw(st.from_regex(r"[0-9A-Z.-]{1,8}", fullmatch=True))}]
        result[name] = fact
    return result


def condition_on(draw, facts: dict) -> str:
    """A well-typed, satisfiable condition over some facts (distinct facts in an 'and')."""
    parts = []
    for name in draw(st.lists(st.sampled_from(sorted(facts)), min_size=1, max_size=3, unique=True)):
        fact = facts[name]
        kind = fact["type"]
        if kind == "boolean":
            parts.append(draw(st.sampled_from([name, f"not {name}"])))
        elif kind in ("quantity", "count"):
            op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
            value = draw(st.integers(1, 300))
            unit = f" {fact['unit']}" if kind == "quantity" and draw(st.booleans()) else ""
            form = draw(st.sampled_from(["plain", "latest", "window"]))
            if form == "latest":
                subject = f"latest({name})"
            elif form == "window" and kind == "quantity":
                subject = f"max({name}, {draw(st.integers(1, 52))}w)"
            else:
                subject = name
            parts.append(f"{subject} {op} {value}{unit}")
        elif kind == "code":
            values = ", ".join(f'"{v}"' for v in draw(st.lists(st.sampled_from(fact["values"]), min_size=1, unique=True)))
            parts.append(f"{name} in [{values}]")
        elif kind == "date":
            parts.append(f"days_since({name}) > {draw(st.integers(1, 60))}w")
        else:
            parts.append(f"exists({name})")
    joiner = draw(st.sampled_from([" and ", " or "]))
    return joiner.join(parts)


@st.composite
def pathway_data(draw):
    fact_map = draw(facts())
    sources = [{"id": "src", "title": draw(text), "version": draw(text)}]
    evidence = {"source": "src", "confidence": draw(st.sampled_from(["P", "S", "M"]))}
    stages = sorted(draw(st.lists(st.sampled_from(STAGES), min_size=1, max_size=7)), key=STAGES.index)
    steps = []
    for i, stage in enumerate(stages):
        step = {
            "id": f"step_{i}",
            "title": {"nl": draw(text)} | ({"en": draw(text)} if draw(st.booleans()) else {}),
            "stage": stage,
            "discipline": draw(st.sampled_from(sorted(DISCIPLINES))),
            "evidence": evidence,
        }
        earlier = [s["id"] for s in steps if s["stage"] != "escalation"]
        if earlier and stage != "escalation" and draw(st.booleans()):
            step["requires"] = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True))
        if stage == "escalation":
            step["escalation"] = {
                "trigger": condition_on(draw, fact_map),
                "severity": draw(st.sampled_from(["spoed", "regulier"])),
                "action": draw(st.sampled_from(["spoedconsult", "verwijzing_specialist", "huisarts_informeren"])),
                "notify": draw(st.lists(st.sampled_from(sorted(DISCIPLINES)), min_size=1, max_size=2, unique=True)),
            }
        elif draw(st.booleans()):
            step["gate"] = condition_on(draw, fact_map)
        if stage == "reviews":
            first = draw(st.integers(1, 12))
            step["timing"] = {"at": [f"{first}w", f"{first + draw(st.integers(1, 20))}w"], "every": f"{draw(st.integers(1, 26))}w"}
        elif stage != "escalation" and draw(st.booleans()):
            step["timing"] = {"after": draw(st.sampled_from(["enrollment", *earlier])), "offset": f"{draw(st.integers(0, 8))}w"}
        measurable = [n for n, f in fact_map.items() if f["type"] in ("quantity", "count")]
        if stage == "goals" and measurable:
            step["goals"] = [{
                "id": f"goal_{i}",
                "title": {"nl": draw(text)},
                "fact": draw(st.sampled_from(measurable)),
                "target": f"<= {draw(st.integers(1, 100))}",
                "deadline": f"{draw(st.integers(1, 52))}w",
            }]
        if draw(st.booleans()):
            step["outputs"] = [{"fact": f} for f in draw(st.lists(st.sampled_from(sorted(fact_map)), max_size=3, unique=True))]
        steps.append(step)
    return {
        "pathway": draw(ident),
        "version": f"{draw(st.integers(0, 9))}.{draw(st.integers(0, 20))}.{draw(st.integers(0, 99))}",
        "title": {"nl": draw(text), "en": draw(text)},
        "owner": draw(text),
        "sources": sources,
        "facts": fact_map,
        "indication": {"when": condition_on(draw, fact_map), "evidence": evidence},
        "steps": steps,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pathway_data())
def test_generated_definitions_check_clean_and_roundtrip(tmp_path: Path, data):
    spec = PathwaySpec.model_validate(data)
    file = tmp_path / "pathway.yaml"
    file.write_text(dump_yaml(spec), encoding="utf-8")

    doc, problems = load_document(file)
    assert problems == []
    assert doc is not None
    # generated goals have random deadlines and schedules: a PW051 warning is fair, an error is not
    assert [str(p) for p in check_pathway(doc, {}, []) if not p.is_warning] == []
    assert doc.model == spec
    assert to_data(doc.model) == to_data(spec)
    assert dump_yaml(doc.model) == dump_yaml(spec)


def test_shipped_pathways_roundtrip(tmp_path):
    from conftest import PATHWAYS_DIR

    for file in sorted(PATHWAYS_DIR.glob("*/pathway.yaml")):
        doc, problems = load_document(file)
        assert problems == [] and doc is not None
        again = tmp_path / file.parent.name / "pathway.yaml"
        again.parent.mkdir()
        again.write_text(dump_yaml(doc.model), encoding="utf-8")
        reloaded, problems = load_document(again)
        assert problems == [] and reloaded is not None
        assert reloaded.model == doc.model
