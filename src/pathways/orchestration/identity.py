"""Patient identity as configured (``PATHWAYS_BSN_STORAGE``): a BSN kept as a keyed hash (HMAC,
the key from ``PATHWAYS_IDENTITY_SECRET`` or its file), as it is, or not at all."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from pathways.orchestration.settings import bsn_storage, current


def identity_secret(create: bool = True) -> bytes | None:
    """The HMAC secret: PATHWAYS_IDENTITY_SECRET, else the file PATHWAYS_IDENTITY_SECRET_FILE
    (default .pathways/identity.key, created with 32 random bytes, readable by its owner only)."""
    settings = current()
    if settings.identity_secret is not None:
        return settings.identity_secret.get_secret_value().encode()
    path = Path(settings.identity_secret_file)
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


def identity_row(identity: dict[str, Any]) -> dict[str, Any] | None:
    """What the store keeps of a patient's identifying data, as configured."""
    if not identity or not any(identity.values()):
        return None
    mode = bsn_storage()
    bsn = identity.get("bsn")
    row: dict[str, Any] = {"name": identity.get("name"), "birth_date": identity.get("birth_date"), "bsn_hmac": None, "bsn": None}
    if bsn and mode == "hmac":
        row["bsn_hmac"] = bsn_hmac(bsn)
    elif bsn and mode == "plain":
        row["bsn"] = bsn
    return row if any(v is not None for v in row.values()) else None  # nothing kept: no identity row


def bsn_hmac(bsn: str) -> str:
    return hmac.new(identity_secret(), bsn.strip().encode(), hashlib.sha256).hexdigest()
