"""Care-network parameters for personal plans: the bundling window (steps of one discipline due
within it are one appointment; runtime/plan.py).

Where it comes from, first found wins: the ``--window`` option of `pathways plan`; the
setting PATHWAYS_PLAN_WINDOW_DAYS (orchestration/settings.py); ``bundling_window_days`` in ``_shared/network.yaml``
of the first pathway root that has that file (PATHWAYS_PATH, ./pathways, the shipped pathways);
else 14 days. A value that is not a whole number of days from 0 to 366 is a PlanError naming
where it comes from (the variable, or the file and line), before anything is read or stored;
the file is read and checked by definition/network.py (which `pathways validate` runs too).
"""

from __future__ import annotations

from pathlib import Path

from pathways.definition.loader import NETWORK_FILE, pathway_roots
from pathways.definition.network import network_file as _network_file, read_network, window_problem
from pathways.orchestration.settings import current
from pathways.runtime.plan import DEFAULT_WINDOW_DAYS, PlanError

ENV = "PATHWAYS_PLAN_WINDOW_DAYS"


def _whole_days(value: object, where: str, fix: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            pass
    why = window_problem(value)
    if why:
        raise PlanError([f"{where}: {why}; {fix}"])
    return value


def network_file(roots: list[Path] | None = None) -> Path | None:
    """``_shared/network.yaml`` of the first pathway root that has one."""
    return next((f for f in map(_network_file, pathway_roots(current().places) if roots is None else roots) if f is not None), None)


def bundling_window(option: int | None = None, roots: list[Path] | None = None) -> int:
    """The care network's bundling window in days (see the module's docstring)."""
    if option is not None:
        return _whole_days(option, "--window", "give e.g. --window 14")
    configured = current().plan_window_days
    if configured:
        return _whole_days(configured, ENV, f"set e.g. {ENV}=14, or unset it to use {NETWORK_FILE}")
    file = network_file(roots)
    if file is None:
        return DEFAULT_WINDOW_DAYS
    window, problems = read_network(file)
    if problems:
        raise PlanError([f"{p.location}: {p.message}; {p.hint}" for p in problems])
    return DEFAULT_WINDOW_DAYS if window is None else window
