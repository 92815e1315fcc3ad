"""Published pathway versions. An enrollment runs the version it was enrolled in (its version
key: id, version, content hash), rebuilt from the files the store's audit trail kept when that
version was published (`pathways publish`, or the first enrollment), whatever the files on disk
say now. Files on disk that are no published version are a *draft*: nobody is enrolled in them."""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pathways.definition.loader import AUTHORING_CHECKS, PATHWAY_FILE, LoadedPathway, load_pathway
from pathways.orchestration.settings import current
from pathways.store.db import StoreError
from pathways.store.trail import Trail


class VersionNotPublished(StoreError):
    """An enrollment's version that this store's trail does not hold (and the files on disk are not it)."""


class DraftPathway(ValueError):
    """Enrolling into pathway files that are no published version."""


def rebuild(version_key: str, files: dict[str, Any]) -> LoadedPathway:
    """The pathway of ``version_key`` loaded from the files its trail kept: written into a folder
    laid out as on disk (``<id>/pathway.yaml``, ``_shared/*.yaml``, ``<id>/documents/``), then
    read by the normal loader, so a published version is checked as any pathway is."""
    pathway_id = version_key.split("@", 1)[0]
    folder = Path(tempfile.mkdtemp(prefix=f"pathways-{pathway_id}-"))
    atexit.register(shutil.rmtree, folder, True)  # kept while the process may load from it
    for name, info in files.items():
        text = info["text"]
        if hashlib.sha256(text.encode()).hexdigest() != info["sha256"]:
            raise VersionNotPublished(f"{version_key}: the trail's copy of {info['file']} ({name}) does not match its "
                                      f"sha256; run `pathways audit verify`")
        kind = info.get("kind")
        if kind == "pathway":
            path = folder / pathway_id / PATHWAY_FILE
        elif kind == "library":
            path = folder / "_shared" / info["file"]
        else:  # templates: the ones the version rendered with (the first found of every folder), all in its own
            path = folder / pathway_id / "documents" / info["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return load_pathway(str(folder / pathway_id / PATHWAY_FILE), templates=False, tolerated=AUTHORING_CHECKS, places=current().places)




def not_published(version_key: str, on_disk: str | None) -> VersionNotPublished:
    pathway = version_key.split("@", 1)[0]
    now = f"the pathway files on disk are {on_disk}" if on_disk else f"no valid pathway files of {pathway} are on disk"
    return VersionNotPublished(f"{version_key} is not published in this store and {now}: put that version's files in "
                               f"a folder on PATHWAYS_PATH and `pathways publish {pathway}`")


def draft_refusal(pathway_file: str, pathway: str, version: str, version_key: str, published: list[tuple[str, str]]) -> DraftPathway:
    """Why files that are no published version cannot be enrolled in, and how to publish them."""
    same = [key for v, key in published if v == version]
    if same:
        return DraftPathway(f"{pathway_file} is a draft: {pathway} {version} is published with other content ({same[0]}, "
                            f"these files are {version_key}); enrollments run published versions only: bump `version:` "
                            f"in {pathway_file} and `pathways publish {pathway}`")
    versions = ", ".join(dict.fromkeys(v for v, _ in published))
    return DraftPathway(f"{pathway_file} is a draft: {pathway} {version} is not published in this store (published: "
                        f"{versions}); enrollments run published versions only: `pathways publish {pathway}`")


class UnknownVersion(VersionNotPublished):
    """A ``NAME@VERSION`` that this store has not published."""


def pathway_side(side: str, trail: Trail | None = None) -> tuple[str, LoadedPathway]:
    """One side of `pathways diff`, with its label: ``NAME@VERSION`` (a version published in this
    store, rebuilt from its trail; the label is its version key), ``NAME@draft`` or ``NAME`` (the
    files on disk, found as `pathways show` finds them) or a path to a pathway.yaml or its folder.
    ProblemsFound when the files do not validate; UnknownVersion (naming the published ones)
    when the store has not published that version. ``trail``: the store's (default: the
    configured one's), read only for a published version."""
    if Path(side).exists():
        return side, load_pathway(side, places=current().places)
    name, _, version = side.partition("@")
    if version in ("", "draft"):
        loaded = load_pathway(name, places=current().places)
        return f"{loaded.spec.id}@draft", loaded
    if trail is None:
        from pathways.orchestration.service import database_url, migrate_once

        trail = Trail(migrate_once(database_url()))
    published = trail.published_versions(name)
    keys = [key for v, key in published if v == version or key == side]
    payload = trail.published_payload(keys[-1]) if keys else None
    if payload is None:
        versions = ", ".join(dict.fromkeys(v for v, _ in published))
        listed = f"published: {versions}" if versions else f"no version of {name} is published here"
        raise UnknownVersion(f"{side}: {name} {version} is not published in this store ({listed}); "
                             f"name a published version, `{name}@draft` for the files on disk, or a path")
    return keys[-1], rebuild(keys[-1], payload.get("files", {}))
