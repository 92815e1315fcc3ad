"""pathways' settings as one typed, frozen object (``Settings``): every ``PATHWAYS_*`` variable
(and ``PREFECT_API_URL``, which says whether the embedded Prefect server is used), read and
checked at once (``from_environment``) before anything runs, every wrong value named with its
variable and the fix. ``current()`` is the settings of this process's environment (read once per
distinct environment); the batch worker processes are handed the caller's object (``use``).
Only this module reads ``PATHWAYS_*`` from the environment: the entry points (the command line,
the web application's settings, the flows, the worker processes) take this object and pass it,
or values from it, on; the layers below take the values as arguments (``places``, ``clock()``,
``actor()``: what the definition layer, the clock and access control are given).
tests/unit/test_settings.py fails when another module reads one (it lists who may touch the
environment, and why).
``describe`` is what `pathways config` prints: each setting's value (secrets hidden) and where it
came from (the environment, a file, or the default)."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, SecretStr

from pathways.access import ROLES, Actor, actor_of
from pathways.clock import Clock, FixedClock, SystemClock
from pathways.definition.places import Places
from pathways.errors import SettingError
from pathways.store.defaults import DEFAULT_URL

DEFAULT_BATCH_SIZE = 500

# field -> (variable, what it is); the order is `pathways config`'s
VARIABLES: dict[str, tuple[str, str]] = {
    "database_url": ("PATHWAYS_DATABASE_URL", "the store (SQLAlchemy URL)"),
    "batch_size": ("PATHWAYS_BATCH_SIZE", "enrollments per batch (one Prefect task each)"),
    "workers": ("PATHWAYS_WORKERS", "processes that advance batches side by side"),
    "schedule_reviews": ("PATHWAYS_SCHEDULE_REVIEWS", "schedule next due dates as flow runs (1), not (0), or on a server with the deployment"),
    "bsn_storage": ("PATHWAYS_BSN_STORAGE", "how a BSN is kept: hmac, plain or none"),
    "identity_secret": ("PATHWAYS_IDENTITY_SECRET", "the key of the BSN's keyed hash"),
    "identity_secret_file": ("PATHWAYS_IDENTITY_SECRET_FILE", "the file holding that key"),
    "token_file": ("PATHWAYS_TOKEN_FILE", "a file naming the acting user and role"),
    "role": ("PATHWAYS_ROLE", "the acting role"),
    "user": ("PATHWAYS_USER", "the acting user"),
    "today": ("PATHWAYS_TODAY", "a fixed date (tests, demos)"),
    "path": ("PATHWAYS_PATH", "folders searched for pathways and shared libraries"),
    "templates": ("PATHWAYS_TEMPLATES", "a care network's document templates"),
    "mermaid_js": ("PATHWAYS_MERMAID_JS", "another copy of mermaid.js for diagrams"),
    "plan_window_days": ("PATHWAYS_PLAN_WINDOW_DAYS", "personal plans' bundling window in days (else _shared/network.yaml, else 14)"),
    "web_secret": ("PATHWAYS_WEB_SECRET", "the key that signs the web application's cookies"),
    "web_secret_file": ("PATHWAYS_WEB_SECRET_FILE", "the file holding that key"),
    "web_secure_cookies": ("PATHWAYS_WEB_SECURE_COOKIES", "cookies over HTTPS only (1) or not (0)"),
    "web_prefect": ("PATHWAYS_WEB_PREFECT", "the web application advances through Prefect after a recorded step (1) or not (0)"),
    "prefect_api_url": ("PREFECT_API_URL", "the Prefect server (unset: the embedded one)"),
}
SECRETS = ("identity_secret", "web_secret")


class Settings(BaseModel):
    """The effective settings; ``sources``: where each field's value came from."""

    model_config = ConfigDict(frozen=True)

    database_url: str = DEFAULT_URL
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int | None = None  # None: the cores, at most 4
    schedule_reviews: Literal["", "0", "1"] = ""
    bsn_storage: Literal["hmac", "plain", "none"] = "hmac"
    identity_secret: SecretStr | None = None
    identity_secret_file: str = ".pathways/identity.key"
    token_file: str | None = None
    role: str | None = None
    user: str | None = None
    today: dt.date | None = None
    path: str | None = None
    templates: str | None = None
    mermaid_js: str | None = None
    # kept as written: orchestration/network.py checks it when a plan is made, so a wrong window
    # is one plan's problem, reported with the others (`pathways plan`, the re-planning after an advance)
    plan_window_days: str | None = None
    web_secret: SecretStr | None = None
    web_secret_file: str = ".pathways/web.key"
    web_secure_cookies: bool = False
    web_prefect: bool = True
    prefect_api_url: str | None = None
    sources: dict[str, str] = {}

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers is not None else max(1, min(4, os.cpu_count() or 1))

    @property
    def places(self) -> Places:
        """Where pathways, their libraries and a care network's templates are looked for
        (PATHWAYS_PATH, PATHWAYS_TEMPLATES), as the definition layer takes them."""
        return Places.of(self.path, self.templates)

    def clock(self) -> Clock:
        """A fixed clock on PATHWAYS_TODAY (tests, demos), else the system clock."""
        return FixedClock.on(self.today) if self.today is not None else SystemClock()

    def actor(self) -> Actor:
        """The acting user and role (PATHWAYS_TOKEN_FILE, PATHWAYS_ROLE, PATHWAYS_USER); a
        ConfigurationError when the token file does not read."""
        return actor_of(self.token_file, self.role, self.user)


def from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; a SettingError names every wrong one (variable, value, fix)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for name, (variable, _) in VARIABLES.items():
        raw = environ.get(variable)
        if raw is None or (raw.strip() == "" and name != "schedule_reviews"):
            sources[name] = "default"
            continue
        try:
            values[name] = _parsed(name, raw)
            sources[name] = f"environment ({variable})"
        except SettingError as exc:
            problems.append(str(exc))
    if problems:
        raise SettingError("\n".join(problems))
    return Settings(**values, sources=sources)


def _parsed(name: str, raw: str) -> Any:
    """One setting's value from its variable's text, or a SettingError naming it and the fix."""
    if name == "database_url":
        if "://" not in raw:
            raise SettingError(f"PATHWAYS_DATABASE_URL: '{raw.split('@', 1)[-1]}' is not a database URL; "
                               "write sqlite:///path/to/pathways.db or postgresql://user@host/database")
        return raw
    if name == "batch_size":
        try:
            size = int(raw)
        except ValueError:
            raise SettingError(f"PATHWAYS_BATCH_SIZE: '{raw}' is not a whole number (enrollments per batch, default 500)") from None
        if size < 1:
            raise SettingError(f"PATHWAYS_BATCH_SIZE: {size} enrollments per batch would advance nobody; set a whole number of at least 1, or unset it for the default 500")
        return size
    if name == "workers":
        try:
            return max(1, int(raw))
        except ValueError:
            raise SettingError(f"PATHWAYS_WORKERS: '{raw}' is not a whole number (1 advances every batch in the flow's own process)") from None
    if name == "schedule_reviews":
        value = raw.strip()
        if value not in ("", "0", "1"):
            raise SettingError(f"PATHWAYS_SCHEDULE_REVIEWS: '{value}' is not 1 (schedule next reviews) or 0 (do not); "
                               "unset, they are scheduled on a Prefect server that has the pathways-advance/batch deployment")
        return value
    if name == "bsn_storage":
        if raw not in ("hmac", "plain", "none"):
            raise SettingError(f"PATHWAYS_BSN_STORAGE: '{raw}' is not one of hmac, plain, none")
        return raw
    if name == "role":
        if raw not in ROLES:
            raise SettingError(f"PATHWAYS_ROLE: unknown role '{raw}' (roles: {', '.join(ROLES)})")
        return raw
    if name == "today":
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise SettingError(f"PATHWAYS_TODAY: '{raw}' is not a date; write YYYY-MM-DD (e.g. 2026-01-05), or unset it for today") from None
    if name == "web_secure_cookies":
        if raw not in ("0", "1"):
            raise SettingError(f"PATHWAYS_WEB_SECURE_COOKIES: '{raw}' is not 1 (cookies over HTTPS only) or 0")
        return raw == "1"
    if name == "web_prefect":
        if raw not in ("0", "1"):
            raise SettingError(f"PATHWAYS_WEB_PREFECT: '{raw}' is not 1 (advance through Prefect after recording) or 0")
        return raw == "1"
    if name == "web_secret" and len(raw) < 32:
        raise SettingError("PATHWAYS_WEB_SECRET: give at least 32 characters (e.g. the output of `openssl rand -hex 32`)")
    return raw


_CACHE: dict[tuple, Settings] = {}
_LOCK = threading.Lock()


def _key(environ: Mapping[str, str]) -> tuple:
    names = {variable for variable, _ in VARIABLES.values()}
    return tuple(sorted((k, v) for k, v in environ.items() if k in names))


def current(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``environ`` (default: this process's environment), read once per distinct
    environment (a SettingError when one is wrong, every time it is asked)."""
    environ = os.environ if environ is None else environ
    key = _key(environ)
    found = _CACHE.get(key)
    if found is None:
        found = from_environment(environ)
        with _LOCK:
            if len(_CACHE) > 16:  # (tests change the environment often)
                _CACHE.clear()
            _CACHE[key] = found
    return found


def use(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """In a worker process: the caller's settings object is this environment's (not read again)."""
    with _LOCK:
        _CACHE[_key(os.environ if environ is None else environ)] = settings


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(variable, value as shown, where it came from) for every setting; secrets hidden, a
    database password hidden, a secret kept in a file named by its file."""
    rows = []
    for name, (variable, _) in VARIABLES.items():
        value = getattr(settings, name)
        source = settings.sources.get(name, "default")
        if name in SECRETS:
            file = Path(getattr(settings, f"{name}_file"))
            if value is not None:
                shown = "(set, hidden)"
            elif file.is_file():
                shown, source = "(set, hidden)", f"file {file}"
            else:
                shown = "(none yet: created on first use)"
        elif name == "database_url":
            shown = _without_password(value)
        elif name == "workers" and value is None:
            shown = f"{settings.worker_count} (the cores, at most 4)"
        elif name == "role" and value is None and settings.token_file:
            shown, source = "(from the token file)", f"file {settings.token_file}"
        elif name == "role" and value is None:
            shown = "admin"
        elif name == "user" and value is None:
            shown = "(the login name)"
        elif name == "schedule_reviews" and value == "":
            shown = "(on a Prefect server with the deployment)"
        elif value is None:
            shown = "(unset)"
        else:
            shown = str(value).lower() if isinstance(value, bool) else str(value)
        rows.append((variable, shown, source))
    return rows


def shown_lines(settings: Settings) -> list[str]:
    """`pathways config`'s lines: variable, value, and where it came from, in columns."""
    rows = describe(settings)
    width = max(len(variable) for variable, _, _ in rows)
    value_width = max(len(shown) for _, shown, _ in rows)
    return [f"{variable:<{width}}  {shown:<{value_width}}  {source}" for variable, shown, source in rows]


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, place = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{place}"


# -- the settings one at a time (as the code asks for them) ---------------------------------

def database_url() -> str:
    return current().database_url


def check_database_url(url: str) -> None:
    """A URL that SQLAlchemy cannot parse is a SettingError before anything runs."""
    from pathways.store.connect import is_database_url

    if not is_database_url(url):
        raise SettingError(f"PATHWAYS_DATABASE_URL: '{url.split('@', 1)[-1]}' is not a database URL; "
                           "write sqlite:///path/to/pathways.db or postgresql://user@host/database")


def batch_size() -> int:
    """PATHWAYS_BATCH_SIZE: enrollments per batch (one Prefect task each), default 500."""
    return current().batch_size


def worker_count() -> int:
    """PATHWAYS_WORKERS: processes that advance batches side by side (default: the cores, at most 4)."""
    return current().worker_count


def schedule_reviews_setting() -> str:
    """PATHWAYS_SCHEDULE_REVIEWS: 1 (schedule next due dates as flow runs), 0 (do not), or unset
    ("": on a Prefect server that has the batch deployment; followup.review_deployment decides)."""
    return current().schedule_reviews


def bsn_storage() -> str:
    """PATHWAYS_BSN_STORAGE: hmac (default: a keyed hash), plain, or none (not kept)."""
    return current().bsn_storage
