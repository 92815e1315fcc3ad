"""Where pathways, shared libraries and document templates are looked for beyond a pathway's own
folder (``Places``): the folders of ``PATHWAYS_PATH`` and a care network's templates
(``PATHWAYS_TEMPLATES``). The definition layer takes them as an argument and reads no
environment: the entry points read the settings once (``pathways.orchestration.settings``) and
pass them on, so loading a pathway gives the same result in a command, a web request, a Prefect
flow run and a worker process. ``Places()``, nothing configured, is what tests mostly want."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Places:
    """``path``: folders searched for pathways (and their ``_shared`` libraries) before
    ./pathways and the shipped ones; ``templates``: a care network's document templates, used
    before a pathway's own."""

    path: tuple[Path, ...] = ()
    templates: Path | None = None

    @classmethod
    def of(cls, path: str | None = None, templates: str | None = None) -> "Places":
        """From the settings' text: ``path`` as PATHWAYS_PATH writes it (folders joined by
        ``os.pathsep``; empty parts ignored), ``templates`` a folder (empty: none)."""
        return cls(tuple(Path(p) for p in (path or "").split(os.pathsep) if p), Path(templates) if templates else None)
