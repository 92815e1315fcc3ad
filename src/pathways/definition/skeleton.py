"""A small pathway to start from (`pathways new NAME`): every required key, one fact, one step,
no thresholds (those come from a cited source, never from a template). It validates as written."""

from __future__ import annotations

import re
from pathlib import Path

NAME = re.compile(r"^[a-z][a-z0-9_]*$")

TEMPLATE = """\
# A new pathway. Replace the placeholders, add facts, parameters (thresholds, each cited from a
# source) and steps, then run `pathways validate {folder}`. Every key is described in
# docs/pathway-format.md; `pathways schema pathway` prints the JSON Schema for editors.
pathway: {name}
version: 0.1.0
title: {{nl: {title} (concept), en: {title} (draft)}}
owner: (your care network)
sources:
  - {{id: bron, title: (the guideline this pathway follows), version: (its version), confidence: M}}
# uses: [clinical, financing]   # shared facts and financing rules, found as pathways are (PATHWAYS_PATH)
facts:
  diagnose: {{type: boolean, title: (the diagnosis that brings a patient in), source: condition}}
indication:
  when: diagnose
  evidence: {{source: bron, confidence: M}}
steps:
  - id: intake
    title: {{nl: Intake, en: Intake}}
    stage: intake
    discipline: huisarts
    evidence: {{source: bron, confidence: M}}
"""


class SkeletonError(ValueError):
    """The name is not a pathway id, or the file exists already (nothing is overwritten)."""


def write_skeleton(name: str, parent: Path) -> Path:
    """Write ``parent/NAME/pathway.yaml``; refuses an invalid name or an existing file."""
    if not NAME.match(name) or len(name) > 64:
        raise SkeletonError(f"'{name}' is not a pathway id: use lower case letters, digits and _, starting with a letter")
    folder = parent / name
    file = folder / "pathway.yaml"
    if file.exists():
        raise SkeletonError(f"{file} exists already: nothing was written (choose another name or folder)")
    folder.mkdir(parents=True, exist_ok=True)
    file.write_text(TEMPLATE.format(name=name, title=name.replace("_", " ").capitalize(), folder=folder), encoding="utf-8")
    return file
