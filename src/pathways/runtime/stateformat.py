"""An enrollment's state as stored: JSON with a format number, read and written here only.

``dump_state`` writes the current ``FORMAT`` with every field and its value (defaults too), so
changing a default in the code later never changes what a stored state means. ``load_state``
reads any format this code knows: an older one is brought forward by the upgrade functions in
``UPGRADES``, one per format change (``{from_format: function(dict) -> dict}``, applied in turn,
as SpiffWorkflow's serializer does); a newer one is refused (``StateFormatError``).

Formats:

1. (no ``format`` key; written until 2026-12-03) the fields that differed from the model's
   defaults only (an untouched step was ``{}``).
2. ``{"format": 2, ...}`` with every field of the state, its steps, goals and escalations.

A new format: bump ``FORMAT``, add ``UPGRADES[FORMAT - 1]`` that turns the previous format's dict
into the new one with explicit values (never the model's defaults, which may change later), and
add a test that reads a state of the previous format.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from pydantic import ValidationError

from pathways.runtime.core import EnrollmentState

FORMAT = 2
CURRENT_PREFIX = _PREFIX = '{"format":%d,' % FORMAT  # how a state of the current format starts


class StateFormatError(ValueError):
    """A stored state this code cannot read (a newer format, or not a state at all)."""


def _format_1_to_2(state: dict[str, Any]) -> dict[str, Any]:
    """Fill in the defaults format 1 left out, with the values they had when it was written."""
    defaults = {
        "steps": {"occurrence": 0, "status": "waiting", "due_on": None, "done_on": [], "reasons": []},
        "goals": {"baseline": None, "latest": None, "status": "open"},
        "escalations": {"reasons": []},
        "closed_escalations": {"recovered": False},
    }
    upgraded = {"indicated": None, **state}
    for part, fields in defaults.items():
        if isinstance(state.get(part, {}), dict):  # anything else: left for validation to name
            upgraded[part] = {k: {**fields, **v} if isinstance(v, dict) else v for k, v in state.get(part, {}).items()}
    if "steps" not in state:
        del upgraded["steps"]  # required: validation names it
    return upgraded

UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _format_1_to_2}


def dump_state(state: EnrollmentState) -> str:
    """The state as stored: ``{"format": FORMAT, ...}`` with every field, defaults included."""
    return _PREFIX + state.model_dump_json()[1:]


def load_state(text: str) -> EnrollmentState:
    """A stored state of any known format, upgraded to the current one."""
    if text.startswith(_PREFIX):  # the current format: parsed directly (the hot path)
        return _validated(lambda: EnrollmentState.model_validate_json("{" + text[len(_PREFIX):]))
    try:
        data = json.loads(text)
    except ValueError as e:
        raise StateFormatError(f"the stored state is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise StateFormatError("the stored state is not a JSON object")
    return _validated(lambda: EnrollmentState.model_validate(upgrade(data)))


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A stored state's dict brought to the current format (without its ``format`` key)."""
    data = dict(data)
    found = data.pop("format", 1)
    if type(found) is not int or found < 1:
        raise StateFormatError(f"the stored state has format {found!r}, which no pathways wrote")
    if found > FORMAT:
        raise StateFormatError(f"the stored state has format {found}, written by a newer pathways "
                               f"(this one reads formats 1 to {FORMAT}): upgrade pathways")
    for version in range(found, FORMAT):
        data = UPGRADES[version](data)
    return data


def _validated(parse: Callable[[], EnrollmentState]) -> EnrollmentState:
    try:
        return parse()
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:3])
        raise StateFormatError(f"the stored state does not fit format {FORMAT} ({problems})") from None


__all__ = ["CURRENT_PREFIX", "FORMAT", "UPGRADES", "StateFormatError", "dump_state", "load_state", "upgrade"]
