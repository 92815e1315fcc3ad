"""Who is acting, in which role, and what that role may do. Pure: no database, no Prefect.

Roles (issue 5): a coordinator edits (publishes) pathways but cannot read identifying patient
data; a scheduler runs enrollments but cannot publish pathways; an auditor reads the history and
changes nothing; an admin may do everything. The actor comes from configuration:

- ``PATHWAYS_TOKEN_FILE``: a file holding ``user: NAME`` and ``role: ROLE`` (one per line, as
  handed out by an admin; readable by its owner only), or else
- ``PATHWAYS_ROLE`` (and ``PATHWAYS_USER``, default the login name), or else
- nothing configured: the local user acts as ``admin`` (the embedded, one-machine default).

Every denial is written to the audit trail by the caller (see ``pathways.store``).
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

ROLES = ("coordinator", "scheduler", "auditor", "admin")

# permission -> the roles that hold it
PERMISSIONS: dict[str, frozenset[str]] = {
    "pathway.read": frozenset(ROLES),  # validate, show, diagram, evaluate, check
    "pathway.publish": frozenset({"coordinator", "admin"}),
    "enrollment.migrate": frozenset({"coordinator", "admin"}),  # move enrollments to a newer pathway version
    "enrollment.write": frozenset({"scheduler", "admin"}),  # enroll, advance, run, serve, worker
    "input.record": frozenset({"coordinator", "scheduler", "admin"}),  # human input for a step
    "enrollment.read": frozenset({"coordinator", "scheduler", "auditor", "admin"}),  # status (pseudonymous)
    "identity.read": frozenset({"scheduler", "auditor", "admin"}),  # name, birth date, BSN hash
    "audit.read": frozenset({"auditor", "admin"}),
    "document.render": frozenset({"coordinator", "scheduler", "admin"}),  # care-plan documents, FHIR CarePlan
    "account.manage": frozenset({"admin"}),  # web accounts (pathways user add)
}

_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class ConfigurationError(ValueError):
    pass


class AccessDenied(PermissionError):
    def __init__(self, actor: "Actor", permission: str, what: str):
        allowed = ", ".join(sorted(PERMISSIONS[permission]))
        super().__init__(f"{actor.user} ({actor.role}) may not {what}: it needs the permission '{permission}' (roles: {allowed})")
        self.actor, self.permission, self.what = actor, permission, what

    def __reduce__(self):  # crosses from worker processes as itself
        return (AccessDenied, (self.actor, self.permission, self.what))


@dataclass(frozen=True)
class Actor:
    user: str
    role: str
    via: str = "default"  # token-file | environment | default | service

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    @property
    def label(self) -> str:
        return f"{self.user} ({self.role})"


def actor_from_environment(environ: Mapping[str, str]) -> Actor:
    """The acting user and role from PATHWAYS_TOKEN_FILE, PATHWAYS_ROLE or the default (of an
    environment given as a mapping; the entry points use their settings' ``actor()``)."""
    return actor_of(environ.get("PATHWAYS_TOKEN_FILE"), environ.get("PATHWAYS_ROLE"), environ.get("PATHWAYS_USER"))


def actor_of(token_file: str | None, role: str | None, user: str | None) -> Actor:
    """The acting user and role: from the token file if one is named, else ``role`` (and
    ``user``, default the login name), else the login name as admin."""
    if token_file:
        path = Path(token_file)
        try:
            text = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read the token file: {exc.strerror} (PATHWAYS_TOKEN_FILE)") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"{path}: the token file is not UTF-8 text (PATHWAYS_TOKEN_FILE); write it as 'user: NAME' and 'role: ROLE' lines") from None
        if mode & 0o077:
            raise ConfigurationError(f"{path}: the token file may be read by others (mode {oct(mode & 0o777)}); run: chmod 600 {path}")
        values: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, value = line.partition(":")
            if not sep or key.strip() not in ("user", "role"):
                raise ConfigurationError(f"{path}:{number}: expected 'user: NAME' or 'role: ROLE'")
            values[key.strip()] = value.strip()
        if "role" not in values or "user" not in values:
            raise ConfigurationError(f"{path}: the token file needs both 'user: NAME' and 'role: ROLE'")
        return _checked(values["user"], values["role"], "token-file", str(path))
    user = user or _login()
    if role:
        return _checked(user, role, "environment", "PATHWAYS_ROLE")
    return Actor(user=user if _NAME.fullmatch(user) else "local", role="admin", via="default")


def _checked(user: str, role: str, via: str, where: str) -> Actor:
    if role not in ROLES:
        raise ConfigurationError(f"{where}: unknown role '{role}' (roles: {', '.join(ROLES)})")
    if not _NAME.fullmatch(user):
        raise ConfigurationError(f"{where}: user '{user}' must be 1-64 letters, digits or . _ @ -")
    return Actor(user=user, role=role, via=via)


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): a neutral one
        return os.environ.get("USER") or "local"


SERVICE = Actor(user="pathways-service", role="scheduler", via="service")
