"""Checks of what a pathway or shared library defines, shared by both checks (definition/checks.py):
the symbols its expressions can use (facts, derived facts, parameters and named rules, each
defined once, with their types), its conditions (types and units, uncited thresholds, bounds that
exclude each other, values left between or-branches), its evidence citations, sources and
parameters, and cycles among its named rules. Pure functions over loaded documents; every
problem goes into the ``Context``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from pathways.definition import expr as E
from pathways.definition.bounds import Gap, point_gaps
from pathways.definition.model import Evidence, PathwaySpec
from pathways.definition.reporting import Context, Document
from pathways.definition.typecheck import Checker, Symbol, T, derived_type, fact_type, parameter_type, thresholds, unsatisfiable
from pathways.definition.yamlsource import PathKey
from pathways.errors import Location, did_you_mean

NON_CLINICAL_SOURCES = {"indication"}


# -- symbols ------------------------------------------------------------------------------

@dataclass
class Symbols:
    table: dict[str, Symbol] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    origin: dict[str, tuple[Document, PathKey]] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    parameters: dict[str, object] = field(default_factory=dict)  # parameter -> value, for bound checks


def collect_symbols(docs: Iterable[Document], ctx: Context) -> Symbols:
    """Every fact, derived fact, parameter and rule of these documents, duplicates reported."""
    symbols = Symbols()
    for doc in docs:
        model = doc.model
        symbols.broken |= set(doc.broken)
        sections = (("facts", model.facts), ("derived", model.derived), ("parameters", model.parameters), ("rules", model.rules))
        for section, entries in sections:
            for name in entries:
                path = (section, name)
                if name in symbols.origin:
                    other_doc, other_path = symbols.origin[name]
                    where = other_doc.at(other_path, key=True)
                    ctx.add(doc.at(path, key=True), "PW030", f"'{name}' is defined twice", f"also under {other_path[0]} at {where}; rename one")
                    continue
                symbols.origin[name] = (doc, path)
                if section == "facts":
                    symbols.facts[name] = entries[name]
    for name, (doc, path) in symbols.origin.items():
        section = path[0]
        entry = getattr(doc.model, section)[name]
        if section == "facts":
            symbols.table[name] = Symbol("fact", fact_type(entry), entry.source not in NON_CLINICAL_SOURCES)
        elif section == "parameters":
            symbols.table[name] = Symbol("parameter", parameter_type(entry), False)
            symbols.parameters[name] = entry.value
        elif section == "rules":
            symbols.table[name] = Symbol("rule", T("boolean"), False)
    for name, (doc, path) in symbols.origin.items():
        if path[0] != "derived":
            continue
        derived = doc.model.derived[name]
        base = symbols.facts.get(derived.of)
        if base is None:
            if derived.of not in symbols.broken:
                hint = did_you_mean(derived.of, symbols.facts) or "derived facts are computed from facts declared under facts"
                ctx.add(doc.at(path + ("of",)), "PW040", f"derived fact '{name}' is computed from unknown fact '{derived.of}'", hint)
            symbols.table[name] = Symbol("derived", T("unknown"), True)
            continue
        base_type = fact_type(base)
        if derived.function in ("change", "pct_change", "min", "max") and base_type.kind != "number":
            ctx.add(doc.at(path + ("function",)), "PW024", f"{derived.function} needs a numeric fact; '{derived.of}' is {base_type.describe()}", "use count or value_ago")
        if derived.function == "age" and base_type.kind != "date":
            ctx.add(doc.at(path + ("function",)), "PW024", f"age is computed from a date fact; '{derived.of}' is {base_type.describe()}", "name the birth date fact")
        if derived.window is not None and derived.window.amount <= 0:
            ctx.add(doc.at(path + ("window",)), "PW035", f"a window of {derived.window} is empty", "use a window longer than 0")
        symbols.table[name] = Symbol("derived", derived_type(derived, base_type), base.source not in NON_CLINICAL_SOURCES)
    return symbols


# -- expressions --------------------------------------------------------------------------

def check_condition(
    ctx: Context, checker_for, doc: Document, path: PathKey, expression: E.Expr, what: str, cited: bool, symbols: Symbols
) -> bool:
    """Type-check a condition; report uncited thresholds. Returns False when it can never be true."""
    checker: Checker = checker_for(doc, path)
    checker.condition(expression.ast, what)
    if not cited:
        for literal in thresholds(expression.ast, symbols.table)[:1]:
            ctx.add(
                doc.source.in_scalar(path, literal.span.start),
                "PW036",
                f"threshold {threshold_text(literal)} in {what} has no evidence citation",
                "add evidence: {source: ..., section: ..., confidence: P|S|M}, or use a cited parameter",
            )
    if unsatisfiable(expression.ast):
        ctx.add(doc.source.in_scalar(path, 0), "PW041", f"{what} can never be true", "check the bounds: they exclude each other")
        return False
    for gap in point_gaps(expression.ast, symbols.parameters):
        report_gap(ctx, doc.source.in_scalar(path, gap.later.span.start), gap, f"{what} leaves", "in no branch")
    return True


def report_gap(ctx: Context, where: Location, gap: Gap, what: str, where_not: str) -> None:
    below, above = E.unparse(gap.below), E.unparse(gap.above)
    named = gap.bound.lstrip("-")[:1].isalpha()  # a parameter: show its value too
    bound = f"{gap.bound} ({gap.value:g})" if named else gap.bound
    ctx.add(
        where,
        "PW050",
        f"{what} {gap.subject} = {bound} {where_not}: one tests {below}, another {above}",
        "use <= or >= on one side, the side the source puts the boundary on, and cite it",
    )


def threshold_text(node: E.Num) -> str:
    """A threshold as a problem names it: its number (and unit) as written."""
    value = node.value
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {node.unit}" if node.unit else text


def checker_factory(ctx: Context, symbols: Symbols):
    def checker_for(doc: Document, path: PathKey) -> Checker:
        return Checker(symbols.table, symbols.facts, ctx.reporter(doc, path), symbols.broken)

    return checker_for


def check_evidence(ctx: Context, doc: Document, path: PathKey, evidence: Evidence | None) -> None:
    if evidence is None:
        return
    declared = [s.id for s in doc.model.sources]
    if evidence.source not in declared and evidence.source not in doc.broken and "sources" not in doc.failed:
        kind = "pathway" if isinstance(doc.model, PathwaySpec) else "library"
        hint = did_you_mean(evidence.source, declared) or f"declare it under sources of this {kind}"
        ctx.add(doc.at(path + ("source",)), "PW037", f"unknown source '{evidence.source}'", hint)


def check_definitions(ctx: Context, doc: Document, symbols: Symbols, checker_for) -> None:
    """Sources, parameters and named rules of one document."""
    model = doc.model
    seen: dict[str, int] = {}
    for i, source in enumerate(model.sources):
        if source.id in seen:
            ctx.add(doc.at(("sources", i, "id")), "PW030", f"source '{source.id}' is declared twice", f"first at {doc.at(('sources', seen[source.id], 'id'))}")
        seen.setdefault(source.id, i)
    for name, fact in model.facts.items():
        for j, conversion in enumerate(fact.convert_from):
            check_evidence(ctx, doc, ("facts", name, "convert_from", j, "evidence"), conversion.evidence)
    for name, parameter in model.parameters.items():
        check_evidence(ctx, doc, ("parameters", name, "evidence"), parameter.evidence)
        for j, alternative in enumerate(parameter.alternatives):
            check_evidence(ctx, doc, ("parameters", name, "alternatives", j, "evidence"), alternative.evidence)
            if type(alternative.value) is not type(parameter.value) and not (
                isinstance(alternative.value, (int, float)) and isinstance(parameter.value, (int, float))
                and not isinstance(alternative.value, bool) and not isinstance(parameter.value, bool)
            ):
                ctx.add(doc.at(("parameters", name, "alternatives", j, "value")), "PW024", f"alternative value of '{name}' is not of the same kind as its value", "give a value of the same kind")
    parameters = sorted(n for n, symbol in symbols.table.items() if symbol.kind == "parameter")
    for name, parameter in model.parameters.items():  # a label's {placeholders} are filled in letters: no typo may reach one
        for phrase in (parameter.label.nl, parameter.label.en) if parameter.label is not None else ():
            for placeholder in dict.fromkeys(re.findall(r"\{([^{}]*)\}", phrase or "")):
                if placeholder != "value" and placeholder not in parameters:
                    ctx.add(doc.at(("parameters", name, "label")), "PW021", f"the label of parameter '{name}' names unknown parameter '{{{placeholder}}}'",
                            did_you_mean(placeholder, ["value", *parameters]) or "write {value} for its own value, or {name} of another parameter")
    for name, rule in model.rules.items():
        path = ("rules", name)
        check_evidence(ctx, doc, path + ("evidence",), rule.evidence)
        check_condition(ctx, checker_for, doc, path + ("when",), rule.when, f"rule '{name}'", rule.evidence is not None, symbols)
        if rule.effective_from and rule.effective_until and rule.effective_until <= rule.effective_from:
            ctx.add(doc.at(path + ("effective_until",)), "PW035", f"rule '{name}' ends ({rule.effective_until}) before it starts ({rule.effective_from})", "effective_until must come after effective_from")
    _check_rule_cycles(ctx, doc, symbols)


def _check_rule_cycles(ctx: Context, doc: Document, symbols: Symbols) -> None:
    rules = doc.model.rules
    graph = {name: [n.name for n in E.names(rule.when.ast) if symbols.table.get(n.name, None) and symbols.table[n.name].kind == "rule"] for name, rule in rules.items()}
    for cycle in cycles(graph):
        if cycle[0] in rules:
            ctx.add(doc.at(("rules", cycle[0]), key=True), "PW042", f"rules refer to each other in a cycle: {' -> '.join(cycle + [cycle[0]])}", "break the cycle")


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Each elementary cycle once, reported from its alphabetically first member."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    start = cycle.index(min(cycle))
                    found.append(cycle[start:] + cycle[:start])
            elif state.get(nxt) is None:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node, [])
    return found
