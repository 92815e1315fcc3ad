"""The file formats authors write, described from their pydantic models: JSON Schema for editors
(`pathways schema`) and the key-by-key reference in docs/pathway-format.md (`reference`), each key
with an example taken from the shipped files, so the reference cannot drift from the code.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pathways.definition.loader import CASES_FILE, PATHWAY_FILE, SHARED_DIR
from pathways.definition.model import Library, PathwaySpec
from pathways.definition.yamlsource import read_yaml
from pathways.rules.casefile import CaseFile

FORMATS: dict[str, type[BaseModel]] = {"pathway": PathwaySpec, "library": Library, "cases": CaseFile}
TITLES = {
    "pathway": f"A pathway ({PATHWAY_FILE})",
    "library": f"A shared library ({SHARED_DIR}/NAME.yaml)",
    "cases": f"Assurance cases ({CASES_FILE})",
}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a format (keys as authors write them, e.g. `pathway:`)."""
    schema = FORMATS[kind].model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": TITLES[kind]}


# -- the reference -------------------------------------------------------------------------

def _models_of(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_of(arg)]


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _constrained(args[0], args[1:])
    if origin in (typing.Union, types.UnionType):
        shown = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(shown))
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (tuple, list):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    name = getattr(annotation, "__name__", str(annotation))
    return {"str": "text", "float": "number", "int": "whole number", "bool": "true/false", "date": "date (YYYY-MM-DD)",
            "Duration": "duration (3d, 12w, 6mo, 1y)", "Expr": "expression"}.get(name, name)


def _constrained(annotation: Any, metadata: tuple) -> str:
    pattern = next((getattr(m, "pattern", None) for m in metadata if getattr(m, "pattern", None)), None)
    if pattern == r"^[a-z][a-z0-9_]*$":
        return "id (lower case letters, digits, _)"
    if pattern and pattern.startswith(r"^\d"):
        return "version (1.2.0)"
    return _type_name(annotation)


def _fields(model: type[BaseModel]) -> list[tuple[str, Any]]:
    """The fields of a model, its own before those it inherits (`pathway:` before `facts:`)."""
    own = set(model.__dict__.get("__annotations__", {}))
    fields = list(model.model_fields.items())
    return [f for f in fields if f[0] in own] + [f for f in fields if f[0] not in own]


def _example(model: type[BaseModel], samples: list[tuple[type[BaseModel], Any]]) -> Any:
    return next((data for m, data in samples if m is model), None)


def _collect(model: type[BaseModel], data: Any, samples: list[tuple[type[BaseModel], Any]]) -> None:
    """Walk shipped data alongside the model: the first value each model is given, as an example."""
    if not isinstance(data, dict):
        return
    samples.append((model, data))
    for name, info in model.model_fields.items():
        value = data.get(info.alias or name)
        if value is None:
            continue
        for inner in _models_of(info.annotation):
            origin = typing.get_origin(info.annotation)
            candidates = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) and origin is dict else [value]
            for candidate in candidates[:1]:
                _collect(inner, candidate, samples)


def _yaml(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, allow_unicode=True, sort_keys=False, width=100, default_flow_style=None).rstrip()
    lines = text.splitlines()
    return "\n".join(lines[:12] + (["# ..."] if len(lines) > 12 else []))


def reference(shipped: Path) -> str:
    """docs/pathway-format.md: every model and key of the three formats, each with an example
    from the shipped files under ``shipped`` (the repository's pathways folder)."""
    samples: list[tuple[type[BaseModel], Any]] = []
    for kind, file in (("pathway", shipped / "diabetes" / PATHWAY_FILE), ("library", shipped / SHARED_DIR / "financing.yaml"),
                       ("cases", shipped / "diabetes" / CASES_FILE)):
        source, _ = read_yaml(file)
        _collect(FORMATS[kind], source.data if source else None, samples)
    out = [
        "# The pathway, library and cases formats",
        "",
        "Generated from the pydantic models by `python -m pathways.rules.formats` (do not edit by hand;",
        "`tests/unit/test_problems.py` checks that it is current). Examples come from the shipped files",
        "(`pathways/diabetes/pathway.yaml`, `pathways/_shared/financing.yaml`, `pathways/diabetes/cases.yaml`).",
        "For editors: `pathways schema pathway` (or `library`, `cases`) prints the JSON Schema; with the",
        "YAML language server, put `# yaml-language-server: $schema=pathway.schema.json` on a file's first line.",
        "`pathways new NAME` writes a small pathway to start from.",
        "",
    ]
    done: set[type[BaseModel]] = set()
    for kind, root in FORMATS.items():
        out += [f"## {TITLES[kind]}", ""]
        queue = [root]
        while queue:
            model = queue.pop(0)
            if model in done:
                continue
            done.add(model)
            out += _section(model, _example(model, samples))
            for info in model.model_fields.values():
                queue += [m for m in _models_of(info.annotation) if m not in done]
    return "\n".join(out).rstrip() + "\n"


def _section(model: type[BaseModel], example: Any) -> list[str]:
    doc = " ".join((model.__doc__ or "").split()) if model.__doc__ and "Usage docs" not in model.__doc__ else ""
    lines = [f"### {model.__name__}", ""]
    if doc:
        lines += [doc, ""]
    lines += ["| key | type | required / default |", "|---|---|---|"]
    for name, info in _fields(model):
        key = info.alias or name
        if info.is_required():
            need = "required"
        else:
            default = info.get_default(call_default_factory=True)
            need = "optional" if default in (None, (), {}, []) else f"default `{json.dumps(default, default=str)}`"
        shown = _constrained(info.annotation, tuple(info.metadata)) if info.metadata else _type_name(info.annotation)
        lines.append(f"| `{key}` | {shown} | {need} |")
    if example is not None:
        lines += ["", "```yaml", _yaml(example), "```"]
    return lines + [""]


if __name__ == "__main__":  # python -m pathways.rules.formats > docs/pathway-format.md
    import sys

    sys.stdout.write(reference(Path(__file__).resolve().parents[3] / "pathways"))
