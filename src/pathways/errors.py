"""Problems found in user input, with stable codes and a place in a file.

Every check collects ``Problem`` values and reports them all at once; nothing raises on the
first problem. The codes are stable: ``docs/errors.md`` lists each one and a test keeps that
list and ``CODES`` equal.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass
from typing import Iterable

# code -> (slug, one-line meaning). Never renumber; retire a code by leaving it here unused.
CODES: dict[str, tuple[str, str]] = {
    # reading the file
    "PW001": ("yaml-syntax", "the file is not well-formed YAML"),
    "PW002": ("not-utf8", "the file is not UTF-8 text"),
    "PW003": ("empty-file", "the file is empty or holds only comments"),
    "PW004": ("file-too-large", "the file is larger than a pathway definition can be"),
    "PW005": ("too-deep", "the YAML nests deeper than a pathway definition can"),
    "PW006": ("duplicate-key", "a mapping has the same key twice"),
    "PW007": ("unreadable", "the path cannot be read (missing, a folder without pathways, no permission)"),
    "PW008": ("too-many-nodes", "the YAML expands (through aliases) to more nodes than allowed"),
    # schema
    "PW010": ("unknown-key", "a key that the schema does not know"),
    "PW011": ("missing-key", "a required key is missing"),
    "PW012": ("invalid-value", "a value has the wrong type or is not one of the allowed values"),
    # rule expressions
    "PW020": ("expr-syntax", "a rule expression cannot be parsed"),
    "PW021": ("unknown-name", "an expression names a fact, parameter or rule that is not defined"),
    "PW022": ("unknown-function", "an expression calls a function the language does not have"),
    "PW023": ("bad-arguments", "a function is called with the wrong number or kind of arguments"),
    "PW024": ("type-mismatch", "an expression combines values of incompatible types"),
    "PW025": ("unit-mismatch", "an expression compares or adds quantities in different units"),
    "PW026": ("unknown-code-value", "a coded fact is compared with a value it cannot take"),
    "PW027": ("not-boolean", "a gate, trigger or rule does not yield true or false"),
    # structure
    "PW030": ("duplicate-id", "two steps, facts, parameters, rules or goals share an id"),
    "PW031": ("unknown-step", "a reference to a step that does not exist"),
    "PW032": ("requires-cycle", "steps require each other in a cycle"),
    "PW033": ("unreachable-step", "a step can never become due"),
    "PW034": ("stage-order", "steps or requirements run against the stage order"),
    "PW035": ("impossible-timing", "a timing, deadline or window that cannot happen"),
    "PW036": ("uncited-threshold", "a clinical threshold without an evidence citation"),
    "PW037": ("unknown-source", "an evidence citation names a source the file does not declare"),
    "PW038": ("unknown-library", "`uses` names a shared library that does not exist"),
    "PW039": ("misplaced-escalation", "an escalation outside the escalation stage, or an escalation step without one"),
    "PW040": ("unknown-fact", "outputs, goals or derived facts name a fact that is not defined"),
    "PW041": ("unsatisfiable", "a gate or rule can never be true"),
    "PW042": ("rule-cycle", "named rules or derived facts refer to each other in a cycle"),
    "PW043": ("unknown-financing-rule", "a financing route has no eligibility rule in the shared libraries"),
    # document templates
    "PW044": ("template-syntax", "a document template cannot be parsed"),
    "PW045": ("template-undefined", "a document template uses a name a document does not provide, or fails to render"),
    "PW046": ("missing-template", "a step names a document that has no Dutch template"),
    # boundaries and goals
    "PW050": ("uncovered-boundary", "branches compare a value strictly on both sides of a bound and leave the bound itself out"),
    "PW051": ("goal-not-remeasured", "warning: no step measures a goal's fact again by its deadline, so it can only be judged 'not measured'"),
    # cross-pathway interactions (_shared/interactions.yaml)
    "PW060": ("unknown-pathway", "an interaction rule names a pathway that is not in the folder"),
}

# Codes that warn: reported by validate, but neither fail it (exit 0) nor stop a pathway from
# loading. Every other code is an error.
WARNINGS: frozenset[str] = frozenset({"PW051"})


@dataclass(frozen=True, order=True)
class Location:
    file: str
    line: int = 0  # 1-based; 0 when the problem concerns the whole file
    col: int = 0  # 1-based

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True)
class Problem:
    location: Location
    code: str
    message: str
    hint: str = ""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered problem code {self.code}")

    @property
    def is_warning(self) -> bool:
        return self.code in WARNINGS

    def __str__(self) -> str:
        text = f"{self.location}: {self.code} {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def sort_key(self) -> tuple:
        return (self.location, self.code, self.message)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that are not warnings."""
    return [p for p in problems if not p.is_warning]


class ProblemsFound(Exception):
    """Raised by API entry points that cannot go on; carries every problem found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))


def _fold(text: str) -> str:
    """Lower case without diacritics: 'Diëtist' and 'dietist' are close."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A hint naming the closest candidate, or '' when nothing is close."""
    pool = sorted(set(candidates))
    folded = {_fold(c): c for c in pool}
    exact = folded.get(_fold(word))
    if exact is not None and exact != word:
        return f"did you mean '{exact}'?"
    close = difflib.get_close_matches(_fold(word), list(folded), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{folded[close[0]]}'?"
    return ""


class SettingError(ValueError):
    """An environment setting with a value the engine cannot use (named, with what it accepts)."""


class PrefectUnavailable(RuntimeError):
    """Prefect's server could not be reached (PREFECT_API_URL) or the embedded one did not start:
    nothing was advanced (the message says where to look and what to do)."""
