"""Care-network parameters for personal plans: the bundling window (steps of one discipline due
within it are one appointment; runtime/plan.py).

Where it comes from, first found wins: the ``--window`` option of `pathways plan`; the
environment variable PATHWAYS_PLAN_WINDOW_DAYS; ``bundling_window_days`` in ``_shared/network.yaml``
of the first pathway root that has that file (PATHWAYS_PATH, ./pathways, the shipped pathways);
else 14 days. A value that is not a whole number of days from 0 to 366 is a PlanError naming
where it comes from (the variable, or the file and line), before anything is read or stored.
"""

from __future__ import annotations

import os
from pathlib import Path

from pathways.definition.loader import NETWORK_FILE, SHARED_DIR, pathway_roots
from pathways.definition.yamlsource import read_yaml
from pathways.errors import ProblemsFound
from pathways.runtime.plan import DEFAULT_WINDOW_DAYS, MAX_WINDOW_DAYS, PlanError

ENV = "PATHWAYS_PLAN_WINDOW_DAYS"
KEY = "bundling_window_days"


def _whole_days(value: object, where: str, fix: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WINDOW_DAYS:
        raise PlanError([f"{where}: the bundling window must be a whole number of days from 0 to {MAX_WINDOW_DAYS}, "
                         f"not {value!r}; {fix}"])
    return value


def network_file(roots: list[Path] | None = None) -> Path | None:
    for root in pathway_roots() if roots is None else roots:
        candidate = root / SHARED_DIR / NETWORK_FILE
        if candidate.is_file():
            return candidate
    return None


def bundling_window(option: int | None = None, roots: list[Path] | None = None) -> int:
    """The care network's bundling window in days (see the module's docstring)."""
    if option is not None:
        return _whole_days(option, "--window", "give e.g. --window 14")
    if os.environ.get(ENV, "").strip():
        return _whole_days(os.environ[ENV], ENV, f"set e.g. {ENV}=14, or unset it to use {NETWORK_FILE}")
    file = network_file(roots)
    if file is None:
        return DEFAULT_WINDOW_DAYS
    source, problems = read_yaml(file)
    if problems:
        raise ProblemsFound(problems)
    data = source.data if source is not None else None
    if data is None:
        return DEFAULT_WINDOW_DAYS
    if not isinstance(data, dict):
        raise PlanError([f"{source.at(())}: the care-network file must be a mapping; write `{KEY}: 14`"])
    if KEY not in data:
        return DEFAULT_WINDOW_DAYS
    return _whole_days(data[KEY], str(source.at((KEY,))), f"write e.g. `{KEY}: 14`")
