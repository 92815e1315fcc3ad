"""The diagram page renders in a real headless browser with the network blocked."""

from __future__ import annotations

import pytest

from conftest import dump_dom, run_cli
from pathways.definition.loader import load_pathway


@pytest.mark.browser
@pytest.mark.parametrize("name", ["diabetes", "copd", "heartfailure"])
def test_diagram_page_renders_offline(tmp_path, chromium, name):
    page = tmp_path / f"{name}.html"
    assert run_cli("diagram", name, "--html", str(page)).returncode == 0
    done = dump_dom(chromium, page, tmp_path / "profile")
    dom = done.stdout
    assert 'data-rendered="yes"' in dom, done.stderr[-2000:]
    assert dom.count("<svg") >= 1
    spec = load_pathway(name).spec
    missing = [s.id for s in spec.steps if f"flowchart-{s.id}-" not in dom]
    assert missing == []
    assert '<p id="status"></p>' in dom  # the page's own error line stayed empty
