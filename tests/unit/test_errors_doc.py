"""docs/errors.md and the codes in the code agree, and every code is used."""

from __future__ import annotations

import re

from conftest import ROOT
from pathways.errors import CODES


def documented() -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\| (PW\d{3}) \| ([a-z0-9-]+) \| (.+?) \|$", (ROOT / "docs" / "errors.md").read_text(encoding="utf-8"), re.M)
    return {code: (slug, meaning) for code, slug, meaning in rows}


def test_documented_codes_equal_the_registered_codes():
    assert documented() == CODES


def test_every_registered_code_is_raised_somewhere_in_the_source():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py") if p.name != "errors.py")
    used = set(re.findall(r'"(PW\d{3})"', source))
    assert used == set(CODES)
