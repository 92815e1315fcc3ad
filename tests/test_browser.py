"""The diagram page renders in a real headless browser with the network blocked."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import run_cli
from pathways.definition.loader import load_pathway

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def chromium():
    if CHROMIUM is None:
        if os.environ.get("PATHWAYS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required here (PATHWAYS_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("chromium not installed")
    return CHROMIUM


@pytest.mark.browser
@pytest.mark.parametrize("name", ["diabetes", "copd", "heartfailure"])
def test_diagram_page_renders_offline(tmp_path, chromium, name):
    page = tmp_path / f"{name}.html"
    assert run_cli("diagram", name, "--html", str(page)).returncode == 0
    done = subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            # any attempt to fetch something from a network fails: the page must not need it
            "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=30000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )
    dom = done.stdout
    assert 'data-rendered="yes"' in dom, done.stderr[-2000:]
    assert dom.count("<svg") >= 1
    spec = load_pathway(name).spec
    missing = [s.id for s in spec.steps if f"flowchart-{s.id}-" not in dom]
    assert missing == []
    assert '<p id="status"></p>' in dom  # the page's own error line stayed empty
