"""Shared helpers. Tests run against the repository's own files; ../shared is optional."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHWAYS_DIR = ROOT / "pathways"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `pathways` command in a fresh interpreter."""
    environment = {**os.environ, "DO_NOT_TRACK": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pathways.cli", *args],
        cwd=cwd or ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli():
    return run_cli
