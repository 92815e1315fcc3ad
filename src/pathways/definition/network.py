"""The care network's parameters for personal plans (``_shared/network.yaml`` of a folder of
pathways), read and checked with file and line: ``bundling_window_days``, the window within
which steps of one discipline are one appointment (runtime/plan.py; a whole number of days from
0 to 366, default 14). `pathways validate` reports a bad one; orchestration/network.py decides
which window a plan uses (option, environment, this file, default).
"""

from __future__ import annotations

from pathlib import Path

from pathways.definition.loader import NETWORK_FILE, SHARED_DIR
from pathways.definition.yamlsource import read_yaml
from pathways.errors import Problem, did_you_mean

KEY = "bundling_window_days"
KEYS = (KEY,)
DEFAULT_WINDOW_DAYS = 14
MAX_WINDOW_DAYS = 366


def network_file(folder: Path) -> Path | None:
    candidate = folder / SHARED_DIR / NETWORK_FILE
    return candidate if candidate.is_file() else None


def window_problem(value: object) -> str | None:
    """Why ``value`` is no bundling window (None: it is one)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WINDOW_DAYS:
        return f"the bundling window must be a whole number of days from 0 to {MAX_WINDOW_DAYS}, not {value!r}"
    return None


def read_network(path: Path, display: str | None = None) -> tuple[int | None, list[Problem]]:
    """The file's bundling window (None: not set) and its problems, each with file and line."""
    source, problems = read_yaml(path, display)
    if source is None or problems:
        return None, problems
    data = source.data
    if not isinstance(data, dict):
        return None, [Problem(source.at(()), "PW012", "the care-network file must be a mapping", f"write `{KEY}: {DEFAULT_WINDOW_DAYS}`")]
    for key in data:
        if key not in KEYS:
            problems.append(Problem(source.at((key,), key=True), "PW010", f"'{key}' is no care-network parameter",
                                    did_you_mean(str(key), KEYS) or f"known: {', '.join(KEYS)}"))
    value = data.get(KEY)
    why = None if value is None else window_problem(value)
    if why:
        problems.append(Problem(source.at((KEY,)), "PW012", why, f"write e.g. `{KEY}: {DEFAULT_WINDOW_DAYS}`"))
    return (None if problems else value), problems
