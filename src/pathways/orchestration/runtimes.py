"""Publishing pathway versions (a version's files kept in the store, refused while a draft) and
keeping one loaded runtime per version (``Runtimes``); ``by_version`` groups enrollments by the
version they run."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pathways.definition.loader import LoadedPathway, load_pathway
from pathways.definition.places import Places
from pathways.errors import ProblemsFound
from pathways.orchestration.settings import current, database_url
from pathways.orchestration.stores import authorize, migrate_once
from pathways.rules.evaluate import PathwayEvaluator
from pathways.runtime.core import Runtime
from pathways.store.audit import Record
from pathways.store.connect import retrying
from pathways.store.db import Store
from pathways.store.trail import Trail
from pathways.store.vocabulary import Key

def ensure_published(store: Store, runtime: Runtime) -> None:
    """A pathway version runs only once it is published in this store (its files are kept in
    the audit trail). Roles that may publish do it on first use; others are refused."""
    key = runtime.evaluator.plan.version_key
    known = _PUBLISHED.setdefault(str(store.engine.url), set())  # per database: a store is opened per batch
    if key in known or store.is_published(key):
        known.add(key)
        return
    spec = runtime.loaded.spec
    authorize(store, "pathway.publish", f"run {spec.id} {spec.version}, which is not published in this store yet "
              f"(a coordinator publishes it with `pathways publish {spec.id}`)", key)
    publish(store, runtime.loaded, key)
    known.add(key)


_PUBLISHED: dict[str, set[str]] = {}


def refuse_draft(store: Store, runtime: Runtime) -> None:
    """Raise DraftPathway when the files on disk are no version published in this store while
    others of the pathway are (an edit, or a new version not yet published). A store that holds
    no version of the pathway publishes the files on first use (``ensure_published``)."""
    key = runtime.evaluator.plan.version_key
    if key in _PUBLISHED.get(str(store.engine.url), set()) or store.is_published(key):
        return
    spec = runtime.loaded.spec
    published = store.published_versions(spec.id)
    if published:
        from pathways.orchestration.versions import draft_refusal

        raise draft_refusal(runtime.loaded.file, spec.id, spec.version, key, published)


def publish(store: Store, loaded: LoadedPathway, version_key: str) -> bool:
    """Record the pathway version with the text of its files (the trail stays self-sufficient)."""
    authorize(store, "pathway.publish", f"publish {loaded.spec.id} {loaded.spec.version}", version_key)
    files = {}
    for document in (loaded.document, *loaded.libraries):
        path = Path(document.source.file)
        text = path.read_text(encoding="utf-8")
        files[f"{document.model.id}@{document.model.version}"] = {
            "file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text,
            "kind": "pathway" if document is loaded.document else "library",
        }
    from pathways.definition.documents import template_dirs

    templates = {}
    for folder in reversed(template_dirs(Path(loaded.file), loaded.spec.id, loaded.places.templates)):  # the first found wins, as in rendering
        for path in sorted(folder.glob("*.md.j2")):
            text = path.read_text(encoding="utf-8")
            templates[path.name] = {"file": path.name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text,
                                    "kind": "template", "from": str(folder)}
    files.update({f"template:{name}": info for name, info in sorted(templates.items())})
    return store.publish(loaded.spec.id, loaded.spec.version, version_key, {Key.FILES: files})


class Runtimes:
    """One runtime (and compiled ruleset) per pathway version, shared by all enrollments.

    Loading and checking a pathway (its libraries, every document template) costs about a
    quarter of a second, so runtimes are kept for the whole process: a Prefect worker advancing
    batch after batch loads each pathway once. A kept runtime is used only while the files it
    was loaded from are unchanged (same size and modification time, no template added or
    removed, same PATHWAYS_PATH and PATHWAYS_TEMPLATES); otherwise the pathway is loaded again.
    """

    _kept: dict[tuple[str, bool, Places], tuple[tuple, Runtime]] = {}  # per process

    def __init__(self, templates: bool = True):
        self._by_name: dict[str, Runtime] = {}
        self.templates = templates  # False: document templates left unchecked (worker processes)

    _versions: dict[str, Runtime] = {}  # per process, per version key: a published version never changes

    def get_version(self, version_key: str, store: Store | None = None) -> Runtime:
        """The runtime of one pathway version, as published in the store (``store``, else the
        configured one): what an enrollment runs, whatever the files on disk say now. A version
        the trail does not hold runs from the files on disk only if they are that version."""
        kept = Runtimes._versions.get(version_key)
        if kept is not None:
            return kept
        from pathways.orchestration import versions

        trail = store.trail if store is not None else Trail(migrate_once(database_url()))
        files = retrying(lambda: _published_files(trail, version_key), what="the store")
        pathway = version_key.split("@", 1)[0]
        if files is None:
            try:
                runtime = self.get(pathway)
            except ProblemsFound:
                raise versions.not_published(version_key, None) from None
            if runtime.evaluator.plan.version_key != version_key:
                raise versions.not_published(version_key, runtime.evaluator.plan.version_key)
        else:
            loaded = versions.rebuild(version_key, files)
            runtime = Runtime(loaded, PathwayEvaluator(loaded, cross_check=False))
            if runtime.evaluator.plan.version_key != version_key:
                raise versions.VersionNotPublished(f"the files published as {version_key} load as "
                                                   f"{runtime.evaluator.plan.version_key} with this code")
        Runtimes._versions[version_key] = runtime
        return runtime

    def get(self, pathway: str) -> Runtime:
        """The pathway as the files on disk say now (to enrol, publish, check); an enrollment
        runs its own version: ``get_version``."""
        if pathway not in self._by_name:
            places = current().places  # PATHWAYS_PATH, PATHWAYS_TEMPLATES: part of what a kept runtime was loaded with
            kept = Runtimes._kept.get((pathway, self.templates, places))
            if kept is not None and kept[0] == _signature(kept[1].loaded):
                self._by_name[pathway] = kept[1]
            else:
                loaded = load_pathway(pathway, templates=self.templates, places=places)
                # decisions come from durable-rules; the reference explains those that become events
                # (`pathways evaluate` and the tests compare the two on every condition)
                runtime = Runtime(loaded, PathwayEvaluator(loaded, cross_check=False))
                Runtimes._kept[(pathway, self.templates, places)] = (_signature(loaded), runtime)
                self._by_name[pathway] = runtime
        return self._by_name[pathway]


def _published_files(trail: Trail, version_key: str) -> dict[str, Any] | None:
    payload = trail.published_payload(version_key)
    return None if payload is None else payload.get(Key.FILES, {})


def by_version(store: Store, enrollments: list[str]) -> dict[str, list[str]]:
    """Enrollments grouped by the pathway version each runs (version key), in order."""
    groups: dict[str, list[str]] = {}
    states = store.load_many(enrollments) if enrollments else {}
    for enrollment in enrollments:
        groups.setdefault(states[enrollment][0].version_key, []).append(enrollment)
    return groups


def _signature(loaded: LoadedPathway) -> tuple:
    """What a loaded pathway depends on: its files' sizes and modification times, the document
    templates it can see (the settings that choose them, ``loaded.places``, are part of the key
    it is kept under)."""
    from pathways.definition.documents import template_dirs

    files = [Path(d.source.file) for d in (loaded.document, *loaded.libraries)]
    for folder in template_dirs(Path(loaded.file), loaded.spec.id, loaded.places.templates):
        files += sorted(folder.glob("*.md.j2"))
    stats = []
    for path in files:
        try:
            info = path.stat()
            stats.append((str(path), info.st_size, info.st_mtime_ns))
        except OSError:
            stats.append((str(path), None, None))
    return tuple(stats)
