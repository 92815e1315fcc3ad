"""Checks beyond the schema, the entry points: a shared library's (``check_library``) and a
pathway's (``check_pathway``): its steps' references, cycles and reachability, stage order,
timings, goals and financing routes, on top of what it defines (definition/definitions.py:
symbols, types and units, citations) and reported through definition/reporting.py. Pure
functions over loaded documents; they return every problem found.
"""

from __future__ import annotations

import re
from typing import Iterable

from pathways.definition import expr as E
from pathways.definition.bounds import alternatives_gaps
from pathways.definition.definitions import (
    Symbols, check_condition, check_definitions, check_evidence, checker_factory, collect_symbols, cycles, report_gap, threshold_text)
from pathways.definition.goals import unmeasured_goals
from pathways.definition.model import STAGES, Library, PathwaySpec, Step
from pathways.definition.reporting import Context, Document
from pathways.definition.typecheck import Checker, thresholds
from pathways.definition.yamlsource import PathKey
from pathways.errors import Problem, did_you_mean

FINANCING_NEEDS_RULE = {"zvw_wijkverpleging", "wlz", "wmo", "pgb"}


# -- libraries ----------------------------------------------------------------------------

def check_library(doc: Document) -> list[Problem]:
    ctx = Context()
    library: Library = doc.model  # type: ignore[assignment]
    symbols = collect_symbols([doc], ctx)
    checker_for = checker_factory(ctx, symbols)
    check_definitions(ctx, doc, symbols, checker_for)
    if library.effective_until and library.effective_from and library.effective_until <= library.effective_from:
        ctx.add(doc.at(("effective_until",)), "PW035", f"the library ends ({library.effective_until}) before it starts ({library.effective_from})", "effective_until must come after effective_from")
    for route, rule in library.financing.items():
        if rule not in library.rules and rule not in symbols.broken:
            ctx.add(doc.at(("financing", route)), "PW021", f"financing route '{route}' names unknown rule '{rule}'", did_you_mean(rule, library.rules) or "define it under rules")
    seen: set[str] = set()
    for i, deadline in enumerate(library.deadlines):
        path = ("deadlines", i)
        if deadline.id in seen:
            ctx.add(doc.at(path + ("id",)), "PW030", f"deadline '{deadline.id}' is declared twice", "rename one")
        seen.add(deadline.id)
        check_evidence(ctx, doc, path + ("evidence",), deadline.evidence)
        fact = symbols.facts.get(deadline.after)
        if fact is None:
            ctx.add(doc.at(path + ("after",)), "PW040", f"deadline '{deadline.id}' counts from unknown fact '{deadline.after}'", did_you_mean(deadline.after, symbols.facts) or "declare the date fact under facts")
        elif fact.type != "date":
            ctx.add(doc.at(path + ("after",)), "PW024", f"deadline '{deadline.id}' counts from '{deadline.after}', which is not a date", "name a date fact")
        if deadline.within.amount <= 0:
            ctx.add(doc.at(path + ("within",)), "PW035", f"deadline '{deadline.id}' is due {deadline.within} after its start", "use a positive duration")
    ctx.summarise_undefined([])
    return ctx.problems


# -- pathways -----------------------------------------------------------------------------

def check_pathway(doc: Document, libraries: dict[str, Document], known_libraries: Iterable[str] = ()) -> list[Problem]:
    """Every problem of one pathway; ``libraries`` are the loaded shared libraries by id."""
    ctx = Context()
    spec: PathwaySpec = doc.model  # type: ignore[assignment]
    used: list[Document] = []
    missing: list[Problem] = []
    meant: set[str] = set()  # what the library a misspelt `uses` entry was probably meant to be defines
    for i, name in enumerate(spec.uses):
        if name in libraries:
            used.append(libraries[name])
        else:
            close = re.search(r"'(.+)'", did_you_mean(name, known_libraries))
            if close and close.group(1) in libraries:
                model = libraries[close.group(1)].model
                meant |= {*model.facts, *model.derived, *model.parameters, *model.rules}
            hint = did_you_mean(name, known_libraries) or "shared libraries are found in the _shared folder beside the pathway folders, or in that of a folder on PATHWAYS_PATH"
            ctx.add(doc.at(("uses", i)), "PW038", f"unknown shared library '{name}'", hint)
            missing.append(ctx.problems[-1])
    symbols = collect_symbols([doc, *used], ctx)
    checker_for = checker_factory(ctx, symbols)
    check_definitions(ctx, doc, symbols, checker_for)

    if spec.indication is not None:  # None: it failed the schema, reported already
        _check_indication(ctx, checker_for, doc, spec, symbols)


    steps = {s.id: s for s in spec.steps}
    index = {s.id: i for i, s in enumerate(spec.steps)}
    step_path = lambda step_id: doc.step_paths[index[step_id]]  # noqa: E731
    broken_steps = set(doc.broken)

    _check_step_ids(ctx, doc, spec)
    blocked: dict[str, str] = {}  # step id -> why it can never become due
    for i, step in enumerate(spec.steps):
        path = doc.step_paths[i]
        why = _check_step(ctx, doc, path, step, steps, broken_steps, symbols, checker_for, used)
        if why:
            blocked[step.id] = why
    _check_stage_order(ctx, doc, spec, steps, step_path)

    graph = {s.id: [r for r in s.requires if r in steps] + ([s.timing.after] if s.timing and s.timing.after in steps else []) for s in spec.steps}
    in_cycle: set[str] = set()
    for cycle in cycles(graph):
        in_cycle |= set(cycle)
        ctx.add(doc.at(step_path(cycle[0]) + ("requires",)), "PW032", f"steps require each other in a cycle: {' -> '.join(cycle + [cycle[0]])}", "remove one of the requirements")
    _report_unreachable(ctx, doc, spec, graph, blocked, in_cycle, step_path)
    if "uses" in doc.failed:  # `uses` itself failed the schema (reported already): its names may be anywhere
        missing.append(Problem(doc.at(("uses",)), "PW038", "the shared libraries of this pathway are unknown", "write `uses` as a list of library ids, e.g. uses: [clinical, financing]"))
        ctx.problems.append(missing[-1])
    ctx.summarise_undefined(missing, financing_known=any(lib.model.financing for lib in used), defined_there=frozenset(meant))
    if not ctx.problems:  # warn about a sound pathway only: a broken one has no meaningful schedule
        for late in unmeasured_goals(spec, symbols.facts):
            where = doc.at(step_path(late.step.id) + ("goals", late.index, "deadline"))
            ctx.add(where, "PW051", late.message, late.hint)
    return ctx.problems


def _check_indication(ctx: Context, checker_for, doc: Document, spec: PathwaySpec, symbols: Symbols) -> None:
    check_evidence(ctx, doc, ("indication", "evidence"), spec.indication.evidence)
    check_condition(ctx, checker_for, doc, ("indication", "when"), spec.indication.when, "the indication", True, symbols)
    if spec.indication.exclude is not None:
        check_condition(ctx, checker_for, doc, ("indication", "exclude"), spec.indication.exclude, "the exclusion", True, symbols)


def _check_step_ids(ctx: Context, doc: Document, spec: PathwaySpec) -> None:
    first: dict[str, int] = {}
    goal_first: dict[str, PathKey] = {}
    for i, step in enumerate(spec.steps):
        path = doc.step_paths[i]
        if step.id in first:
            ctx.add(doc.at(path + ("id",)), "PW030", f"step id '{step.id}' is used twice", f"first at {doc.at(doc.step_paths[first[step.id]] + ('id',))}; rename one")
        first.setdefault(step.id, i)
        for j, goal in enumerate(step.goals):
            gpath = path + ("goals", j, "id")
            if goal.id in goal_first:
                ctx.add(doc.at(gpath), "PW030", f"goal id '{goal.id}' is used twice", f"first at {doc.at(goal_first[goal.id])}; rename one")
            goal_first.setdefault(goal.id, gpath)


def _check_step(ctx, doc, path, step: Step, steps, broken_steps, symbols: Symbols, checker_for, used) -> str:
    """Check one step; return why it can never become due ('' when it can)."""
    why = ""
    cited = step.evidence is not None
    check_evidence(ctx, doc, path + ("evidence",), step.evidence)
    for j, required in enumerate(step.requires):
        if required not in steps and required not in broken_steps:
            ctx.add(doc.at(path + ("requires", j)), "PW031", f"step '{step.id}' requires unknown step '{required}'", did_you_mean(required, steps) or "name a step id of this pathway")
        if required == step.id:
            ctx.add(doc.at(path + ("requires", j)), "PW032", f"step '{step.id}' requires itself", "remove it from requires")
    if step.gate is not None:
        if not check_condition(ctx, checker_for, doc, path + ("gate",), step.gate, f"the gate of '{step.id}'", cited, symbols):
            why = "its gate can never be true"
    if step.stage == "escalation" and step.escalation is None:
        ctx.add(doc.at(path + ("stage",)), "PW039", f"escalation step '{step.id}' has no escalation", "add escalation: {trigger, severity, action, notify}")
    if step.escalation is not None:
        if step.stage != "escalation":
            ctx.add(doc.at(path + ("escalation",), key=True), "PW039", f"step '{step.id}' of stage '{step.stage}' has an escalation", "move it to stage: escalation")
        if not check_condition(ctx, checker_for, doc, path + ("escalation", "trigger"), step.escalation.trigger, f"the trigger of '{step.id}'", cited, symbols):
            why = "its trigger can never be true"
        reopen = step.escalation.reopen_after
        if reopen is not None and reopen.amount <= 0:
            ctx.add(doc.at(path + ("escalation", "reopen_after")), "PW035", f"'reopen_after: {reopen}' of '{step.id}' would open it again at once",
                    "give a positive interval such as 3mo, or leave reopen_after out: it then opens again only after the patient recovered")
    why = _check_timing(ctx, doc, path, step, steps) or why
    for j, output in enumerate(step.outputs):
        if output.fact not in symbols.facts and output.fact not in symbols.broken:
            hint = did_you_mean(output.fact, symbols.facts) or "declare it under facts"
            if output.fact in symbols.table:
                hint = f"'{output.fact}' is a {symbols.table[output.fact].kind}; outputs are facts people record"
            ctx.add(doc.at(path + ("outputs", j, "fact")), "PW040", f"step '{step.id}' records unknown fact '{output.fact}'", hint)
    for j, goal in enumerate(step.goals):
        _check_goal(ctx, doc, path + ("goals", j), goal, cited, symbols, checker_for)
    _check_goal_alternatives(ctx, doc, path, step, symbols)
    if step.financing in FINANCING_NEEDS_RULE and not any(step.financing in lib.model.financing for lib in used):
        ctx.add(doc.at(path + ("financing",)), "PW043", f"financing route '{step.financing}' has no eligibility rule", "add `uses: [financing]` or a library that maps this route to a rule")
    return why


def _check_goal_alternatives(ctx: Context, doc: Document, path: PathKey, step: Step, symbols: Symbols) -> None:
    """Goals of one step on the same fact, each for some patients (``when``), are alternatives
    of one decision (which target applies): a value none of them takes leaves a patient without one."""
    by_fact: dict[str, list[int]] = {}
    for j, goal in enumerate(step.goals):
        if goal.when is not None:
            by_fact.setdefault(goal.fact, []).append(j)
    for fact, indexes in by_fact.items():
        if len(indexes) < 2:
            continue
        whens = [step.goals[j].when.ast for j in indexes]
        for gap in alternatives_gaps(whens, symbols.parameters):
            j = next(j for j, tree in zip(indexes, whens) if any(n is gap.later for n in E.walk(tree)))
            where = doc.source.in_scalar(path + ("goals", j, "when"), gap.later.span.start)
            report_gap(ctx, where, gap, f"the goals on {fact} of step '{step.id}' leave", "to no goal")


def _check_goal(ctx, doc, path, goal, step_cited: bool, symbols: Symbols, checker_for) -> None:
    check_evidence(ctx, doc, path + ("evidence",), goal.evidence)
    fact = symbols.facts.get(goal.fact)
    if fact is None:
        if goal.fact not in symbols.broken:
            ctx.add(doc.at(path + ("fact",)), "PW040", f"goal '{goal.id}' measures unknown fact '{goal.fact}'", did_you_mean(goal.fact, symbols.facts) or "declare it under facts")
    elif fact.type not in ("quantity", "count"):
        ctx.add(doc.at(path + ("fact",)), "PW024", f"goal '{goal.id}' measures '{goal.fact}', which is not measurable ({fact.type})", "a SMART goal measures a quantity or count")
    if goal.when is not None:
        check_condition(ctx, checker_for, doc, path + ("when",), goal.when, f"the condition of goal '{goal.id}'", goal.evidence is not None or step_cited, symbols)
    if goal.deadline.amount <= 0:
        ctx.add(doc.at(path + ("deadline",)), "PW035", f"goal '{goal.id}' is due {goal.deadline} after it is agreed", "give a deadline after 0, e.g. 12w")
    prefix = f"{goal.fact} "
    try:
        target = E.Expr.parse(prefix + goal.target)
    except E.ExprSyntaxError as exc:
        ctx.add(doc.source.in_scalar(path + ("target",), max(exc.offset - len(prefix), 0)), "PW020", exc.message, exc.hint)
        return
    if not isinstance(target.ast, (E.Compare, E.InList)) or (isinstance(target.ast, E.Compare) and target.ast.left != E.Name(goal.fact, E.Span(0, len(goal.fact)))):
        ctx.add(doc.at(path + ("target",)), "PW020", f"goal target '{goal.target}' is not a comparison", "write e.g. '<= 53' or '<= hba1c_target'")
        return
    if fact is None:
        return
    shifted = _Shifted(ctx, doc, path + ("target",), len(prefix))
    Checker(symbols.table, symbols.facts, shifted, symbols.broken).condition(target.ast, f"goal '{goal.id}'")
    if goal.evidence is None and not step_cited:
        for literal in thresholds(target.ast, symbols.table)[:1]:
            shifted(literal.span, "PW036", f"target {threshold_text(literal)} of goal '{goal.id}' has no evidence citation", "add evidence to the goal or its step, or use a cited parameter")


class _Shifted:
    """Report positions of a goal target, which was parsed with the fact name in front."""

    def __init__(self, ctx: Context, doc: Document, path: PathKey, shift: int):
        self.ctx, self.doc, self.path, self.shift = ctx, doc, path, shift

    def __call__(self, span: E.Span, code: str, message: str, hint: str) -> None:
        self.ctx.add(self.doc.source.in_scalar(self.path, max(span.start - self.shift, 0)), code, message, hint)


def _check_timing(ctx: Context, doc: Document, path: PathKey, step: Step, steps: dict[str, Step]) -> str:
    timing = step.timing
    tpath = path + ("timing",)
    if timing is None:
        if step.stage == "reviews":
            ctx.add(doc.at(path + ("stage",)), "PW033", f"review step '{step.id}' has no timing, so it never becomes due", "add timing: {at: [4w, 12w], every: 13w}")
            return "it has no timing"
        return ""
    if step.stage == "escalation":
        ctx.add(doc.at(tpath, key=True), "PW035", f"escalation step '{step.id}' is triggered, not scheduled", "remove its timing")
    why = ""
    if timing.after != "enrollment":
        if timing.after == step.id:
            ctx.add(doc.at(tpath + ("after",)), "PW035", f"step '{step.id}' is timed after itself", "time it after enrollment or another step")
            why = "it is timed after itself"
        elif timing.after not in steps and timing.after not in doc.broken:
            ctx.add(doc.at(tpath + ("after",)), "PW031", f"step '{step.id}' is timed after unknown step '{timing.after}'", did_you_mean(timing.after, [*steps, "enrollment"]) or "name 'enrollment' or a step id")
            why = "its anchor does not exist"
    if timing.offset.amount < 0:
        ctx.add(doc.at(tpath + ("offset",)), "PW035", f"offset {timing.offset} puts step '{step.id}' before its anchor", "use an offset of 0 or more")
    previous = None
    for j, moment in enumerate(timing.at):
        if moment.amount <= 0:
            ctx.add(doc.at(tpath + ("at", j)), "PW035", f"review moment {moment} is not after the anchor", "review moments count from the anchor and must be after it")
        elif previous is not None and moment.approx_days <= previous.approx_days:
            ctx.add(doc.at(tpath + ("at", j)), "PW035", f"review moment {moment} does not come after {previous}", "list review moments in increasing order")
        previous = moment
    if timing.every is not None and timing.every.amount <= 0:
        ctx.add(doc.at(tpath + ("every",)), "PW035", f"'every {timing.every}' never moves forward", "use a positive interval such as 13w")
    if timing.until is not None:
        last = max([timing.offset, *timing.at], key=lambda d: d.approx_days)
        if timing.until.approx_days <= last.approx_days:
            ctx.add(doc.at(tpath + ("until",)), "PW035", f"'until {timing.until}' ends before the last moment {last}", "make until later than every moment")
    if timing.every is not None and not timing.at and timing.until is None and step.stage not in ("reviews", "interventions"):
        ctx.add(doc.at(tpath + ("every",)), "PW035", f"step '{step.id}' of stage '{step.stage}' recurs forever", "recurring steps belong to reviews or interventions, or give until")
    return why


def _check_stage_order(ctx: Context, doc: Document, spec: PathwaySpec, steps: dict[str, Step], step_path) -> None:
    rank = {stage: i for i, stage in enumerate(STAGES)}
    highest: Step | None = None
    for step in spec.steps:
        if highest is not None and rank[step.stage] < rank[highest.stage]:
            ctx.add(
                doc.at(step_path(step.id) + ("stage",)),
                "PW034",
                f"step '{step.id}' ({step.stage}) is listed after step '{highest.id}' ({highest.stage})",
                f"list steps in stage order: {', '.join(STAGES)}",
            )
        elif highest is None or rank[step.stage] > rank[highest.stage]:
            highest = step
        for j, required in enumerate(step.requires):
            other = steps.get(required)
            if other is not None and rank[other.stage] > rank[step.stage]:
                ctx.add(
                    doc.at(step_path(step.id) + ("requires", j)),
                    "PW034",
                    f"{step.stage} step '{step.id}' requires '{required}' of the later stage {other.stage}",
                    "a step can only require steps of its own or an earlier stage",
                )


def _report_unreachable(ctx, doc, spec, graph, blocked: dict[str, str], in_cycle: set[str], step_path) -> None:
    done: dict[str, str] = {}

    def reason(step_id: str, trail: tuple[str, ...]) -> str:
        if step_id in done:
            return done[step_id]
        if step_id in trail:
            return ""
        why = ""
        if step_id in in_cycle:
            why = "it is part of a requirement cycle"
        elif step_id in blocked:
            why = blocked[step_id]
        else:
            for dep in graph.get(step_id, ()):
                if reason(dep, trail + (step_id,)):
                    why = f"it depends on '{dep}', which can never become due"
                    break
        done[step_id] = why
        return why

    for step in spec.steps:
        why = reason(step.id, ())
        # the root cause was reported already (cycle, gate, missing timing); report the knock-on
        if why.startswith("it depends on"):
            ctx.add(doc.at(step_path(step.id) + ("id",)), "PW033", f"step '{step.id}' can never become due: {why[3:]}", "fix the step it depends on")
