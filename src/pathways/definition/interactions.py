"""The cross-pathway interaction library (``_shared/interactions.yaml``): declarative rules, in
the pathways' own expression language, about steps of two pathways that must not go ahead as
each pathway alone says (a drug one pathway gives and a value another measures, say).

Each rule names the pathways it is about and one step in each (the *source steps* a conflict
shows), a ``when`` condition over the facts, derived facts, named rules and parameters of those
pathways, what to do (``action``), a severity, and its evidence (a source the file declares,
section, confidence label), like every threshold. Interactions the sources do not support are
listed under ``gaps`` (never invented). ``check_interactions`` reports every problem with file
and line; the runtime evaluates the rules (runtime/interactions.py).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from pathways.definition import expr as E
from pathways.definition.loader import INTERACTIONS_FILE, SHARED_DIR, LoadedPathway, Validation, available_pathways, display_path as _display, schema_problems, validate_paths
from pathways.definition.network import network_file, read_network
from pathways.definition.places import Places
from pathways.definition.model import EscalationAction, Evidence, Identifier, NonEmpty, Severity, Source, Strict, Text
from pathways.definition.yamlsource import Source as YamlSource, read_yaml
from pathways.errors import Location, Problem, did_you_mean, errors



class SourceStep(Strict):
    pathway: Identifier
    step: Identifier


class Escalate(Strict):
    """A conflict of this rule opens an escalation on the patient's plan, open until resolved
    (`pathways plan PATIENT --resolve RULE --reason TEXT`), like a pathway's escalation."""

    severity: Severity
    action: EscalationAction


class Interaction(Strict):
    id: Identifier
    title: NonEmpty | Text  # Dutch, or {nl, en}: the English zorgplan shows ``en``
    steps: tuple[SourceStep, SourceStep]
    when: E.Expr
    action: NonEmpty | Text
    severity: str = "regulier"
    evidence: Evidence
    escalate: Escalate | None = None

    @property
    def pathways(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.pathway for s in self.steps))

    def text(self, name: str, lang: str) -> str:
        """``title`` or ``action`` in ``lang`` (Dutch when there is no English)."""
        value = getattr(self, name)
        return value if isinstance(value, str) else (getattr(value, lang, None) or value.nl)


class Gap(Strict):
    id: Identifier
    title: NonEmpty
    why: NonEmpty


class InteractionLibrary(Strict):
    sources: tuple[Source, ...] = ()
    interactions: tuple[Interaction, ...] = ()
    gaps: tuple[Gap, ...] = ()


class LoadedInteractions:
    def __init__(self, source: YamlSource, library: InteractionLibrary):
        self.source, self.library = source, library

    @property
    def file(self) -> str:
        return self.source.file

    def at(self, *path) -> Location:
        return self.source.at(tuple(path))


def interactions_file(folder: Path) -> Path | None:
    """The interaction library of a folder of pathways (``<folder>/_shared/interactions.yaml``)."""
    candidate = folder / SHARED_DIR / INTERACTIONS_FILE
    return candidate if candidate.is_file() else None


def read_interactions(path: Path, display: str | None = None) -> tuple[LoadedInteractions | None, list[Problem]]:
    source, problems = read_yaml(path, display)
    if source is None or problems:
        return None, problems
    if not isinstance(source.data, dict):
        return None, [Problem(source.at(()), "PW012", "the interaction library must be a mapping",
                              "start with `interactions:` (a list of rules)")]
    try:
        return LoadedInteractions(source, InteractionLibrary.model_validate(source.data)), []
    except ValidationError as exc:
        return None, schema_problems(source, InteractionLibrary, exc)


def names_in_scope(pathways: list[LoadedPathway]) -> dict[str, str]:
    """Every name a rule about these pathways may use: name -> what it is."""
    scope: dict[str, str] = {}
    for loaded in pathways:
        for kind, names in (("fact", loaded.facts), ("derived fact", loaded.derived), ("rule", loaded.rules),
                            ("parameter", loaded.parameters)):
            for name in names:
                scope.setdefault(name, kind)
    return scope


def check_interactions(doc: LoadedInteractions, pathways: dict[str, LoadedPathway], unusable: set[str] = frozenset(),
                       elsewhere: set[str] = frozenset()) -> list[Problem]:
    """Unknown pathways, steps, names and sources, each with file and line. ``unusable``: pathways
    of the folder that did not load (their own problems are reported): rules about them are left
    unchecked rather than reported as naming an unknown pathway; so are rules about pathways
    not in the folder but found elsewhere (``elsewhere``: on PATHWAYS_PATH or shipped), as when a
    folder holds one pathway and a copy of the shared libraries."""
    problems: list[Problem] = []
    sources = {s.id for s in doc.library.sources}
    seen: set[str] = set()
    for i, rule in enumerate(doc.library.interactions):
        base = ("interactions", i)
        if rule.id in seen:
            problems.append(Problem(doc.at(*base, "id"), "PW030", f"interaction '{rule.id}' is defined twice", "rename one"))
        seen.add(rule.id)
        known: list[LoadedPathway] = []
        if any(ref.pathway in unusable for ref in rule.steps):
            continue
        for j, ref in enumerate(rule.steps):
            loaded = pathways.get(ref.pathway)
            if loaded is None and ref.pathway in elsewhere:  # a folder holding some of the pathways: that rule is not checked here
                known = []
                break
            if loaded is None:
                problems.append(Problem(doc.at(*base, "steps", j, "pathway"), "PW060",
                                        f"interaction '{rule.id}' names pathway '{ref.pathway}', which is not in this folder",
                                        did_you_mean(ref.pathway, pathways) or f"known pathways: {', '.join(sorted(pathways)) or 'none'}"))
                continue
            known.append(loaded)
            steps = {s.id for s in loaded.spec.steps}
            if ref.step not in steps:
                problems.append(Problem(doc.at(*base, "steps", j, "step"), "PW031",
                                        f"interaction '{rule.id}': pathway {ref.pathway} has no step '{ref.step}'",
                                        did_you_mean(ref.step, steps)))
        if len(known) == len(rule.steps):
            problems += _check_names(doc, base, rule, names_in_scope(known))
        if rule.evidence.source not in sources:
            problems.append(Problem(doc.at(*base, "evidence", "source"), "PW037",
                                    f"interaction '{rule.id}' cites source '{rule.evidence.source}', which the file does not declare",
                                    did_you_mean(rule.evidence.source, sources) or "add it under `sources:`"))
    return problems


def _check_names(doc: LoadedInteractions, base: tuple, rule: Interaction, scope: dict[str, str]) -> list[Problem]:
    problems = []
    for node in E.walk(rule.when.ast):
        if isinstance(node, E.Call) and node.func not in E.FUNCTIONS:
            problems.append(Problem(doc.source.in_scalar(base + ("when",), node.span.start), "PW022",
                                    f"interaction '{rule.id}' calls '{node.func}', which the language does not have",
                                    did_you_mean(node.func, E.FUNCTIONS)))
        if isinstance(node, E.Name) and node.name not in scope:
            problems.append(Problem(doc.source.in_scalar(base + ("when",), node.span.start), "PW021",
                                    f"interaction '{rule.id}' uses '{node.name}', which is no fact, rule or parameter of "
                                    f"{' or '.join(rule.pathways)}", did_you_mean(node.name, scope)))
    return problems


def validate_with_interactions(paths: list[Path], places: Places = Places()) -> Validation:
    """``validate_paths``, and the interaction library of every folder given, checked against the
    pathways of that folder (what `pathways validate` runs), and its care-network parameters
    (``_shared/network.yaml``)."""
    result = validate_paths(paths, places)
    add_interactions(result, paths, places)
    return result


def add_interactions(result: Validation, paths: list[Path] | list[str], places: Places = Places()) -> None:
    """The interaction library of every folder in ``paths``, checked against the pathways of that
    folder, added to ``result`` (its files, problems and rule count); ``places``: where the
    pathways it names that are not in the folder are found."""
    for folder in map(Path, paths):
        if not folder.is_dir():
            continue
        network = network_file(folder)
        if network is not None:  # the care network's parameters (definition/network.py): checked, not counted
            result.problems.extend(read_network(network, _display(network))[1])
        file = interactions_file(folder)
        if file is None:
            continue
        result.files += 1
        doc, problems = read_interactions(file, _display(file))
        result.problems.extend(problems)
        if doc is not None:
            found = pathways_of(result, folder)
            broken = {f.parent.name for f in folder.glob("*/pathway.yaml")} - set(found)
            result.problems.extend(check_interactions(doc, found, broken, set(available_pathways(places)) - set(found)))
            result.interaction_rules += len(doc.library.interactions)
    result.problems.sort(key=Problem.sort_key)


def pathways_of(result: Validation, folder: Path) -> dict[str, LoadedPathway]:
    """The pathways of ``folder`` validated without errors, with their libraries."""
    libraries = {d.model.id: d for d in result.libraries if Path(d.source.file).resolve().parent == (folder / SHARED_DIR).resolve()}
    failed = {p.location.file for p in errors(result.problems)}
    found = {}
    for doc in result.pathways:
        if doc.source.file in failed:
            continue
        if folder.resolve() in Path(doc.source.file).resolve().parents and all(u in libraries for u in doc.model.uses):
            found[doc.model.id] = LoadedPathway(doc, tuple(libraries[u] for u in doc.model.uses))
    return found
