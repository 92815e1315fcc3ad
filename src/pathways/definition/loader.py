"""Find, read and check pathway and library files; every problem of every file at once.

``validate_paths`` is what ``pathways validate`` runs. ``load_pathway`` gives a checked
pathway with its libraries, or raises ``ProblemsFound`` with all problems.
"""

from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from pathways.definition.documents import check_templates
from pathways.definition.checks import check_library, check_pathway
from pathways.definition.model import Library, PathwaySpec
from pathways.definition.places import Places
from pathways.definition.reporting import Document
from pathways.definition.yamlsource import PathKey, Source, read_yaml
from pathways.errors import Location, Problem, ProblemsFound, did_you_mean, errors

PATHWAY_FILE = "pathway.yaml"
CASES_FILE = "cases.yaml"  # a pathway's assurance cases (their format: pathways.rules.casefile)
SHARED_DIR = "_shared"
INTERACTIONS_FILE = "interactions.yaml"  # the cross-pathway rules (definition/interactions.py), no library
PLAN_CASES_FILE = "plan-cases.yaml"  # assurance cases for combined plans (runtime/plan_cases.py), no library
NETWORK_FILE = "network.yaml"  # care-network parameters (the plan's bundling window: orchestration/network.py), no library
NOT_LIBRARIES = (INTERACTIONS_FILE, PLAN_CASES_FILE, NETWORK_FILE)
_DROPPABLE = {"steps", "facts", "derived", "parameters", "rules", "sources", "deadlines"}


# -- one file -----------------------------------------------------------------------------

def load_document(path: Path, display: str | None = None) -> tuple[Document | None, list[Problem]]:
    """Read and schema-check one pathway or library file."""
    source, problems = read_yaml(path, display)
    if source is None:
        return None, problems
    data = source.data
    if not isinstance(data, dict):
        problems.append(Problem(source.at(()), "PW012", "the file must be a mapping of keys to values", "start with `pathway: <id>` or `library: <id>`"))
        return None, problems
    if "pathway" in data:
        model_cls: type[BaseModel] = PathwaySpec
    elif "library" in data:
        model_cls = Library
    else:
        problems.append(Problem(source.at(()), "PW011", "missing key 'pathway'", "a pathway file starts with `pathway: <id>`, a shared library with `library: <id>`; assurance cases go in cases.yaml"))
        return None, problems
    if problems:  # duplicate keys etc.: the data is not what the author wrote
        return None, problems
    try:
        model = model_cls.model_validate(data)
        return Document(source, model, tuple(("steps", i) for i in range(len(data.get("steps") or ())))), problems
    except ValidationError as exc:
        problems.extend(schema_problems(source, model_cls, exc))
        return _partial(source, model_cls, exc), problems


def _partial(source: Source, model_cls: type[BaseModel], exc: ValidationError) -> Document:
    """The model without the parts that failed, so the checks still run on the rest.

    A failing entry of a list or mapping section (one step, one fact) is left out and its name
    remembered as broken (references to it are not reported again). Every other top-level key is
    validated on its own; one that fails is left at its default, or at None when it has none
    (the checks skip what is None). The model is then assembled without validating it again."""
    data = dict(source.data)
    drop: dict[str, set] = {}
    failed: set[str] = set()
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] in _DROPPABLE:
            drop.setdefault(loc[0], set()).add(loc[1])
        elif loc:
            failed.add(str(loc[0]))
    broken: set[str] = set()
    step_paths: list[PathKey] = [("steps", i) for i in range(len(data.get("steps") or ()))]
    for section, keys in drop.items():
        value = data.get(section)
        if isinstance(value, list):
            for i in keys:
                if isinstance(i, int) and i < len(value) and isinstance(value[i], dict) and isinstance(value[i].get("id"), str):
                    broken.add(value[i]["id"])
            kept = [i for i in range(len(value)) if i not in keys]
            data[section] = [value[i] for i in kept]
            if section == "steps":
                step_paths = [("steps", i) for i in kept]
        elif isinstance(value, dict):
            broken |= {str(k) for k in keys}
            data[section] = {k: v for k, v in value.items() if k not in keys}
    values: dict[str, Any] = {}
    for name, info in model_cls.model_fields.items():
        key = info.alias or name
        fallback = info.get_default(call_default_factory=True) if not info.is_required() else () if typing.get_origin(info.annotation) is tuple else None
        if key in failed or key not in data:
            values[name] = fallback
            continue
        try:
            annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            values[name] = TypeAdapter(annotation).validate_python(data[key])
        except ValidationError:
            values[name] = fallback
            failed.add(key)
    if "steps" in failed:
        step_paths = []
    model = model_cls.model_construct(**values)
    return Document(source, model, tuple(step_paths), frozenset(broken), frozenset(failed))


def _data_prefix(data: Any, loc: tuple) -> tuple[PathKey, tuple]:
    path: list = []
    for i, part in enumerate(loc):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return tuple(path), tuple(loc[i:])
        path.append(part)
    return tuple(path), ()


def _fields_at(model_cls: type[BaseModel], loc: PathKey) -> list[str]:
    """The keys allowed in the mapping at ``loc``, for did-you-mean on unknown keys."""
    current: Any = model_cls
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part or n == part), None)
            if field is None:
                return []
            current = field.annotation
            continue
        if origin in (dict,):
            current = typing.get_args(current)[1]
            continue
        if origin in (tuple, list):
            current = typing.get_args(current)[0]
            continue
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            models = [a for a in typing.get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
            if not models:
                return []
            current = models[0]
            parts.insert(0, part)
            continue
        return []
    while typing.get_origin(current) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        models = [a for a in typing.get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            return []
        current = models[0]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


_QUOTED = re.compile(r"'([^']*)'")


def schema_problems(source: Source, model_cls: type[BaseModel], exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple] = set()

    def add(location: Location, code: str, message: str, hint: str = "") -> None:
        key = (location, code, message)
        if key not in seen:
            seen.add(key)
            problems.append(Problem(location, code, message, hint))

    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        path, rest = _data_prefix(source.data, loc)
        value = error.get("input")
        ctx = error.get("ctx") or {}
        if kind == "missing":
            key = rest[0] if rest else loc[-1]
            add(source.at(path), "PW011", f"{_where(source, path)}missing key '{key}'", f"add '{key}: ...'")
        elif kind == "extra_forbidden":
            allowed = _fields_at(model_cls, path[:-1])
            hint = did_you_mean(str(path[-1]), allowed) or (f"allowed keys: {', '.join(allowed)}" if allowed else "remove it")
            if _split_by_comma(source, path):
                hint = "a comma inside {...} starts a new key: put the text in quotes"
            add(source.at(path, key=True), "PW010", f"{_where(source, path[:-1])}unknown key '{path[-1]}'", hint)
        elif rest == ("[key]",):
            add(source.at(path, key=True), "PW012", f"'{path[-1]}' is not a valid name", "names are lower case letters, digits and _, starting with a letter")
        elif kind == "expr_syntax":
            add(source.in_scalar(path, int(ctx.get("offset", 0))), "PW020", str(ctx.get("message", error["msg"])), str(ctx.get("hint", "")))
        elif kind in ("duration", "expr_type", "duration_type"):
            add(source.at(path), "PW012", f"{_where(source, path)}{error['msg']}", "write a whole number and a unit: d, w, mo or y (e.g. 12w)" if kind != "expr_type" else "write the expression as text")
        elif kind in ("literal_error", "enum"):
            options = _QUOTED.findall(str(ctx.get("expected", "")))
            hint = did_you_mean(str(value), options) or f"one of: {', '.join(options)}"
            add(source.at(path), "PW012", f"{_where(source, path)}'{value}' is not allowed here", hint)
        elif kind == "string_pattern_mismatch":
            is_version = str(ctx.get("pattern", "")).startswith("^\\d")
            what = "version" if is_version else "id"
            hint = "write a semantic version such as 1.2.0" if is_version else "ids are lower case letters, digits and _, starting with a letter"
            add(source.at(path), "PW012", f"{_where(source, path)}'{value}' is not a valid {what}", hint)
        elif kind in ("date_from_datetime_parsing", "date_parsing") and isinstance(value, str):
            reason = f": {ctx['error']}" if ctx.get("error") else ""
            add(source.at(path), "PW012", f"{_where(source, path)}'{value}' is not a date{reason}", "write dates as YYYY-MM-DD, a date that exists")
        elif kind == "too_short":
            add(source.at(path), "PW012", f"{_where(source, path)}needs at least {ctx.get('min_length', 1)} entry", "add one")
        else:
            message = error["msg"].removeprefix("Value error, ")
            shown = "" if isinstance(value, (dict, list)) else f" ('{value}')" if value is not None else ""
            add(source.at(path), "PW012", f"{_where(source, path)}{message[0].lower() + message[1:]}{shown}", _type_hint(kind))
    return problems


def _split_by_comma(source: Source, path: PathKey) -> bool:
    """An unknown key with no value on its parent's line: a comma split a flow-mapping text."""
    parent, key = source.values.get(path[:-1]), source.keys.get(path)
    try:
        value = source.data
        for part in path:
            value = value[part]
    except (KeyError, IndexError, TypeError):
        return False
    return value is None and parent is not None and key is not None and parent.line == key.line


def _where(source: Source, path: PathKey) -> str:
    """'step hba1c_control: ' for problems inside a step, to orient the reader."""
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        steps = source.data.get("steps") if isinstance(source.data, dict) else None
        if isinstance(steps, list) and path[1] < len(steps) and isinstance(steps[path[1]], dict):
            step_id = steps[path[1]].get("id")
            if isinstance(step_id, str):
                return f"step {step_id}: "
    if len(path) >= 2 and path[0] in ("facts", "derived", "parameters", "rules"):
        return f"{path[0]}.{path[1]}: "
    return ""


def _type_hint(kind: str) -> str:
    return {
        "string_type": "write text",
        "float_parsing": "write a number",
        "float_type": "write a number",
        "int_parsing": "write a whole number",
        "bool_parsing": "write true or false",
        "bool_type": "write true or false",
        "dict_type": "write a mapping (key: value lines)",
        "model_type": "write a mapping (key: value lines)",
        "tuple_type": "write a list",
        "list_type": "write a list",
        "date_from_datetime_parsing": "write a date as YYYY-MM-DD",
        "date_parsing": "write a date as YYYY-MM-DD",
        "date_type": "write a date as YYYY-MM-DD",
        "duration": "e.g. 3d, 12w, 6mo, 1y",
    }.get(kind, "")


# -- many files ---------------------------------------------------------------------------

@dataclass
class Validation:
    problems: list[Problem] = field(default_factory=list)
    pathways: list[Document] = field(default_factory=list)
    libraries: list[Document] = field(default_factory=list)
    files: int = 0
    interaction_rules: int = 0  # rules of the interaction libraries checked (definition/interactions.py)
    cases: list[Path] = field(default_factory=list)  # cases.yaml files found: read by the rules layer


class _Libraries:
    """Shared libraries per _shared folder, each read and checked once."""

    def __init__(self, result: Validation, places: Places):
        self.result = result
        self.places = places
        self.by_folder: dict[Path, dict[str, Document]] = {}
        self.files_seen: set[Path] = set()
        self.ids: dict[tuple[Path, str], Document] = {}

    def for_pathway(self, pathway_file: Path, wanted: typing.Iterable[str] = ()) -> tuple[dict[str, Document], list[str]]:
        """The libraries a pathway can use: those of the _shared folder beside it (or above it),
        then, for ids still ``wanted``, of the _shared folder of each pathway root (PATHWAYS_PATH,
        ./pathways, the shipped pathways), searched as pathways are. The first of an id wins."""
        near, roots = _library_folders(pathway_file, self.places)
        found: dict[str, Document] = dict(self._in(near)) if near is not None else {}
        for folder in roots:
            if all(w in found for w in wanted):
                break
            for library_id, doc in self._in(folder).items():
                found.setdefault(library_id, doc)
        return found, sorted(found)

    def _in(self, folder: Path) -> dict[str, Document]:
        if folder not in self.by_folder:
            found: dict[str, Document] = {}
            for path in sorted(folder.glob("*.yaml")):
                if path.name in NOT_LIBRARIES:
                    continue
                doc = self.load(path)
                if doc is not None and isinstance(doc.model, Library) and doc.model.id is not None:
                    found[doc.model.id] = doc
            self.by_folder[folder] = found
        return self.by_folder[folder]

    def load(self, path: Path) -> Document | None:
        resolved = path.resolve()
        if resolved in self.files_seen:
            return next((d for d in self.result.libraries if Path(d.source.file).resolve() == resolved), None)
        self.files_seen.add(resolved)
        self.result.files += 1
        doc, problems = load_document(path, display_path(path))
        self.result.problems.extend(problems)
        if doc is not None and isinstance(doc.model, Library) and doc.model.id is not None:
            first = self.ids.setdefault((resolved.parent, doc.model.id), doc)
            if first is not doc:
                self.result.problems.append(Problem(doc.at(("library",)), "PW030", f"library '{doc.model.id}' is defined twice", f"also in {first.source.file}; rename one"))
                return first
            self.result.problems.extend(check_library(doc))
            self.result.libraries.append(doc)
        return doc


def _library_folders(pathway_file: Path, places: Places) -> tuple[Path | None, list[Path]]:
    """The _shared folder beside (or above) a pathway file, and those of the pathway roots."""
    near = next(((p / SHARED_DIR).resolve() for p in pathway_file.resolve().parents if (p / SHARED_DIR).is_dir()), None)
    roots = [(root / SHARED_DIR).resolve() for root in pathway_roots(places) if (root / SHARED_DIR).is_dir()]
    return near, [folder for folder in dict.fromkeys(roots) if folder != near]


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _files_in(folder: Path) -> list[Path]:
    """Every YAML file of each pathway folder under ``folder`` and of each _shared folder."""
    pathway_folders = sorted({p.parent for p in folder.rglob(PATHWAY_FILE)})
    shared = sorted(p for d in folder.rglob(SHARED_DIR) if d.is_dir() for p in _yaml_files(d))
    if folder.name == SHARED_DIR:
        shared = _yaml_files(folder)
    return [p for p in shared if p.name not in NOT_LIBRARIES] + [f for d in pathway_folders for f in _yaml_files(d)]


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _looks_like_a_name(argument: str | Path) -> bool:
    text = str(argument)
    return not Path(text).exists() and "/" not in text and os.sep not in text and not text.endswith((".yaml", ".yml"))


def validate_paths(paths: list[Path] | list[str], places: Places = Places()) -> Validation:
    """Check every pathway, library and cases file named by ``paths`` (files, folders or pathway
    names, as `show` takes them); collect all problems. Cases files are listed in ``cases``: their
    format belongs to the rules layer, which reads them. ``places``: where names, libraries and
    a care network's templates are looked for (the settings' PATHWAYS_PATH, PATHWAYS_TEMPLATES)."""
    result = Validation()
    libraries = _Libraries(result, places)
    for argument in paths:
        path = Path(argument)
        if _looks_like_a_name(argument):
            known = available_pathways(places)
            if str(argument) not in known:
                hint = did_you_mean(str(argument), known) or (f"known pathways: {', '.join(known)}" if known else "set PATHWAYS_PATH to the folder of your pathways")
                result.problems.append(Problem(Location(str(argument)), "PW007", f"no file, folder or pathway named '{argument}'", hint))
                continue
            files = _yaml_files(known[str(argument)].parent)
        elif path.is_dir():
            files = _files_in(path)
            if not files:
                result.problems.append(Problem(Location(display_path(path)), "PW007", f"no {PATHWAY_FILE} or {SHARED_DIR}/*.yaml files in this folder", "name a folder of pathways, a file or a pathway name"))
        else:
            files = [path]
        for file in files:
            if file.resolve() in libraries.files_seen:
                continue
            if file.name == CASES_FILE:
                libraries.files_seen.add(file.resolve())
                result.files += 1
                result.cases.append(file)
                continue
            if file.parent.name == SHARED_DIR and file.exists():
                libraries.load(file)
                continue
            _validate_file(file, result, libraries)
    result.problems.sort(key=Problem.sort_key)
    return result


def _validate_file(file: Path, result: Validation, libraries: _Libraries, templates: bool = True) -> Document | None:
    libraries.files_seen.add(file.resolve())
    result.files += 1
    doc, problems = load_document(file, display_path(file))
    result.problems.extend(problems)
    if doc is None:
        return None
    if isinstance(doc.model, Library):
        result.problems.extend(check_library(doc))
        result.libraries.append(doc)
        return doc
    available, names = libraries.for_pathway(file, doc.model.uses or ())
    problems = check_pathway(doc, available, names)
    result.problems.extend(problems)
    if not errors(problems) and templates:  # templates are rendered with the pathway's facts: only for a sound pathway
        spec = doc.model
        facts = {}
        for library in available.values():
            facts.update(library.model.facts)
        facts.update(spec.facts)
        where = {s.id: doc.at(("steps", i, "document")) for i, s in enumerate(spec.steps)}
        result.problems.extend(check_templates(file, spec, facts, where, libraries.places.templates))
    result.pathways.append(doc)
    return doc


# -- by name ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedPathway:
    """A pathway that passed every check, with the shared libraries it uses."""

    document: Document
    libraries: tuple[Document, ...]
    places: Places = Places()  # where it was loaded with: its document templates are looked for there too

    @property
    def spec(self) -> PathwaySpec:
        return self.document.model  # type: ignore[return-value]

    @property
    def file(self) -> str:
        return self.document.source.file

    def _merged(self, section: str) -> dict:
        merged: dict = {}
        for library in self.libraries:
            merged.update(getattr(library.model, section))
        merged.update(getattr(self.spec, section))
        return merged

    @property
    def facts(self) -> dict:
        """Facts of the pathway and the libraries it uses (names are unique across them)."""
        return self._merged("facts")

    @property
    def derived(self) -> dict:
        return self._merged("derived")

    @property
    def parameters(self) -> dict:
        return self._merged("parameters")

    @property
    def rules(self) -> dict:
        return self._merged("rules")


def pathway_roots(places: Places = Places()) -> list[Path]:
    """Folders searched for pathways by name: ``places.path`` (PATHWAYS_PATH), ./pathways, the shipped ones."""
    roots = list(places.path)
    roots.append(Path.cwd() / "pathways")
    roots.append(Path(__file__).resolve().parents[3] / "pathways")
    unique: list[Path] = []
    for root in roots:
        if root.is_dir() and root.resolve() not in [u.resolve() for u in unique]:
            unique.append(root)
    return unique


def available_pathways(places: Places = Places()) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in pathway_roots(places):
        for file in sorted(root.glob(f"*/{PATHWAY_FILE}")):
            found.setdefault(file.parent.name, file)
    return found


def find_pathway(name: str, places: Places = Places()) -> Path:
    """A pathway file by name (folder name under a root) or by path; ProblemsFound if none."""
    candidate = Path(name)
    if candidate.is_file():
        return candidate
    if candidate.is_dir() and (candidate / PATHWAY_FILE).is_file():
        return candidate / PATHWAY_FILE
    known = available_pathways(places)
    if name in known:
        return known[name]
    hint = did_you_mean(name, known) or (f"known pathways: {', '.join(known)}" if known else "set PATHWAYS_PATH to the folder of your pathways")
    raise ProblemsFound([Problem(Location(name), "PW007", f"unknown pathway '{name}'", hint)])


# A published version passed the checks of the code that published it, and enrollments run it.
# Checks that judge how it was written, some added since (PW050 came after stores that run
# versions it flags), do not stop it running; problems that leave it impossible to evaluate do.
AUTHORING_CHECKS = frozenset({
    "PW033",  # unreachable-step
    "PW036",  # uncited-threshold
    "PW037",  # unknown-source
    "PW041",  # unsatisfiable
    "PW050",  # uncovered-boundary
    "PW051",  # goal-not-remeasured (a warning already)
})


def load_pathway(name: str, templates: bool = True, tolerated: frozenset[str] = frozenset(),
                 places: Places = Places()) -> LoadedPathway:
    """Load a pathway by name or path and check it; ProblemsFound with every problem if any.
    ``templates=False`` leaves its document templates unchecked (for worker processes that only
    advance enrollments, after the flow that sent them loaded the pathway with every check).
    ``tolerated``: problem codes that do not stop it loading (a published version's files).
    ``places``: where a name, the libraries and a care network's templates are looked for."""
    file = find_pathway(name, places)
    result = Validation()
    libraries = _Libraries(result, places)
    doc = _validate_file(file, result, libraries, templates)
    if [p for p in errors(result.problems) if p.code not in tolerated]:  # warnings do not stop a pathway from loading
        raise ProblemsFound(result.problems)
    assert doc is not None and isinstance(doc.model, PathwaySpec)
    spec: PathwaySpec = doc.model
    available, _ = libraries.for_pathway(file, spec.uses)
    return LoadedPathway(doc, tuple(available[u] for u in spec.uses), places)
