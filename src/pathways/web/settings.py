"""The web application's settings, one typed object; ``from_environment`` reads them the way the
command line does (PATHWAYS_DATABASE_URL, PATHWAYS_TODAY) plus the web's own:

- PATHWAYS_WEB_SECRET: the key that signs session cookies; else the file PATHWAYS_WEB_SECRET_FILE
  (default .pathways/web.key, created with 32 random bytes, readable by its owner only).
- PATHWAYS_WEB_SECURE_COOKIES=1: cookies only over HTTPS (set it behind a TLS proxy).
- PATHWAYS_WEB_PREFECT=0: record steps without the advance through Prefect after each (the
  daily run advances them); default 1: one Prefect (PREFECT_API_URL, or an embedded server
  started with the application and kept warm) advances an enrollment after each recorded step.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pathways.clock import Clock, SystemClock
from pathways.definition.places import Places
from pathways.facts.jsonread import MAX_DOCUMENT_BYTES


@dataclass(frozen=True)
class WebSettings:
    database_url: str
    secret_key: str
    clock: Clock = field(default_factory=SystemClock)
    session_lifetime: dt.timedelta = dt.timedelta(hours=8)  # a working day; then log in again
    secure_cookies: bool = False
    login_failures: int = 5  # failed log-ins per account and client ...
    login_window: dt.timedelta = dt.timedelta(minutes=15)  # ... within this long: further attempts refused
    page_size: int = 25
    max_upload_bytes: int = MAX_DOCUMENT_BYTES  # an uploaded patient file; a larger request is refused unread (413)
    prefect: bool = True  # advance through Prefect after recording (started with the app: its lifespan)
    places: Places = Places()  # where published versions' libraries and templates are also looked for (PATHWAYS_PATH, PATHWAYS_TEMPLATES)


def from_environment(environ: dict[str, str] | None = None) -> WebSettings:
    from pathways.orchestration.settings import current

    environ = dict(os.environ if environ is None else environ)
    settings = current(environ)  # every PATHWAYS_* setting checked here, before the application starts
    return WebSettings(database_url=settings.database_url, secret_key=_secret(settings),
                       clock=settings.clock(), secure_cookies=settings.web_secure_cookies,
                       prefect=settings.web_prefect, places=settings.places)


def _secret(settings) -> str:
    """PATHWAYS_WEB_SECRET (at least 32 characters: checked with the other settings), else the
    key in PATHWAYS_WEB_SECRET_FILE, created on first use."""
    if settings.web_secret is not None:
        return settings.web_secret.get_secret_value()
    path = Path(settings.web_secret_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()
