"""Where the checks of a pathway or shared library put what they find: the ``Document`` (a
validated model with the YAML it came from, so that a problem names its file, line and column)
and the ``Context`` that collects every problem, then reports each undefined name once, at its
first use with the lines of the others, or folded into the problem of a missing shared library
that may define it. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from pathways.definition import expr as E
from pathways.definition.model import Library, PathwaySpec
from pathways.definition.yamlsource import PathKey, Source
from pathways.errors import Location, Problem


@dataclass(frozen=True)
class Document:
    """A validated model with the YAML it came from, so problems can name a place."""

    source: Source
    model: Union[PathwaySpec, Library]
    step_paths: tuple[PathKey, ...] = ()  # YAML path of each model step (entries may have been dropped)
    broken: frozenset[str] = frozenset()  # names and ids whose entries failed the schema
    failed: frozenset[str] = frozenset()  # top-level keys that failed it (left at their default or None)

    def at(self, path: PathKey, key: bool = False) -> Location:
        return self.source.at(path, key)


_UNDEFINED = re.compile(r"^unknown name '([^']+)'$|unknown fact '([^']+)'$")
_SHOWN_NAMES = 8


@dataclass
class Context:
    problems: list[Problem] = field(default_factory=list)
    undefined: dict[Problem, str] = field(default_factory=dict)  # "unknown name/fact" problem -> the name

    def add(self, location: Location, code: str, message: str, hint: str = "") -> None:
        problem = Problem(location, code, message, hint)
        self.problems.append(problem)
        match = _UNDEFINED.search(message) if code in ("PW021", "PW040") else None
        if match:
            self.undefined[problem] = match.group(1) or match.group(2)

    def summarise_undefined(self, missing_libraries: list[Problem], financing_known: bool = True, defined_there: frozenset[str] = frozenset()) -> None:
        """Report each cause of undefined names once. With a shared library missing, names that
        are close to no known name may be defined there: they are listed in the library's problem
        (with the financing routes left without a rule, when no library used maps any route).
        Every other undefined name is reported at its first use, with the lines of the others."""
        by_name: dict[str, list[Problem]] = {}
        for problem, name in sorted(self.undefined.items(), key=lambda item: item[0].sort_key()):
            by_name.setdefault(name, []).append(problem)
        if missing_libraries:
            unknown = {name: uses for name, uses in by_name.items() if name in defined_there or not uses[0].hint.startswith("did you mean")}
            routes = [] if financing_known else sorted((p for p in self.problems if p.code == "PW043"), key=Problem.sort_key)
            folded = {p for uses in unknown.values() for p in uses} | set(routes)
            if folded:
                self._fold_into(missing_libraries[0], unknown, routes)
            self.problems = [p for p in self.problems if p not in folded]
            by_name = {name: uses for name, uses in by_name.items() if name not in unknown}
        repeated = {p for uses in by_name.values() if len(uses) > 1 for p in uses}
        self.problems = [p for p in self.problems if p not in repeated]
        for uses in by_name.values():
            if len(uses) > 1:
                head = uses[0]
                self.problems.append(Problem(head.location, head.code, f"{head.message}, used {len(uses)} times (also {_lines(uses[1:])})", head.hint))

    def reporter(self, doc: Document, path: PathKey):
        def report(span: E.Span, code: str, message: str, hint: str) -> None:
            self.add(doc.source.in_scalar(path, span.start), code, message, hint)

        return report

    def _fold_into(self, cause: Problem, unknown: dict[str, list[Problem]], routes: list[Problem]) -> None:
        summary = []
        it = "them" if cause.message.startswith("the shared libraries") else "it"
        if unknown:
            count = sum(len(uses) for uses in unknown.values())
            parts = [f"{name} ({_lines(uses)})" for name, uses in list(unknown.items())[:_SHOWN_NAMES]]
            if len(unknown) > _SHOWN_NAMES:
                parts.append(f"and {len(unknown) - _SHOWN_NAMES} more")
            names = "the name" if len(unknown) == 1 else f"the {len(unknown)} names"
            summary.append(f"{names} used here and defined nowhere else may come from {it} ({_plural(count, 'use')}): {', '.join(parts)}")
        if routes:
            summary.append(f"{_plural(len(routes), 'step')} use{'s' if len(routes) == 1 else ''} a financing route whose rule may come from {it} ({_lines(routes)})")
        text = "; ".join(summary)
        hint = f"{cause.hint} {text[:1].upper()}{text[1:]}" if cause.hint.endswith("?") else "; ".join(filter(None, [cause.hint, text]))
        self.problems = [p for p in self.problems if p is not cause]
        self.problems.append(Problem(cause.location, cause.code, cause.message, hint))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _lines(problems: list[Problem]) -> str:
    lines = list(dict.fromkeys(p.location.line for p in problems if p.location.line))
    shown = ", ".join(str(n) for n in lines[:_SHOWN_NAMES]) + (f" and {len(lines) - _SHOWN_NAMES} more" if len(lines) > _SHOWN_NAMES else "")
    return f"line{'s' if len(lines) > 1 else ''} {shown}" if lines else "no line"
