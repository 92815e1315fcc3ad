"""The coordinator's journey in a real browser (Debian's Chromium through Playwright, nothing
downloaded): log in, open the editor of a pathway, make a typo and see the problem at its line
(a lint diagnostic from the server's check), fix it, change a step's title and see the diagram
follow. The server is the real `pathways web` on a free port (the `web` fixture, tests/conftest.py)
over a copy of the pathways (PATHWAYS_PATH)."""

from __future__ import annotations

import pytest

from web_setup import Site, log_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def web_site():
    return Site(own_pathways=True)  # the editor saves into it


def _place_cursor(page, text: str, after: str) -> int:
    """Put the editor's cursor just after the first ``after`` in the document; its line number."""
    offset = text.index(after) + len(after)
    page.evaluate("offset => { const v = window.pathwaysEditor; v.focus(); v.dispatch({selection: {anchor: offset}}); }", offset)
    return text[:offset].count("\n") + 1


def test_a_coordinator_sees_a_typo_at_its_line_fixes_it_and_sees_the_diagram_change(web, page, console_errors):
    from playwright.sync_api import expect

    base, file = web.url, web.pathways / "diabetes" / "pathway.yaml"
    text = file.read_text(encoding="utf-8")
    page.goto(f"{base}/pathways/diabetes/edit")
    log_in(page, "coord-ben")
    expect(page.locator("h1")).to_have_text("Edit diabetes")
    status, problems = page.locator("#check-status"), page.locator("#problems li")
    expect(status).to_contain_text("Valid")  # the first check, as the editor opens
    diagram = page.locator("#diagram svg")
    expect(diagram).to_have_count(1)
    expect(diagram).not_to_contain_text("Eerst")

    # a typo: the stage of the first step in 'interventions' becomes 'interventionsx'
    line = _place_cursor(page, text, "stage: interventions")
    page.keyboard.type("x")
    expect(status).to_contain_text("1 problem")
    expect(problems).to_have_count(1)
    expect(problems.first).to_have_attribute("data-line", str(line))
    expect(problems.first).to_have_attribute("data-code", "PW012")
    expect(problems.first).to_contain_text(f"pathway.yaml:{line}:")
    expect(problems.first).to_contain_text("did you mean 'interventions'?")
    # ... and CodeMirror marks it on that line (a lint range in the text, a marker in the gutter)
    marked = page.locator(".cm-content .cm-lintRange-error")
    expect(marked).to_have_count(1)
    assert page.evaluate("() => { const v = window.pathwaysEditor; const el = document.querySelector('.cm-lintRange-error');"
                         " return v.state.doc.lineAt(v.posAtDOM(el)).number; }") == line

    page.keyboard.press("Backspace")  # fixed
    expect(status).to_contain_text("Valid")
    expect(problems).to_have_count(0)
    expect(marked).to_have_count(0)

    # a step's title changes: the diagram follows the draft, the change from the published version is listed
    _place_cursor(page, page.evaluate("() => window.pathwaysEditor.state.doc.toString()"),
                  "title: {nl: Metformine stoppen")
    page.keyboard.type(" Eerst")
    expect(diagram).to_contain_text("Eerst")
    expect(page.locator("#changes")).to_contain_text("metformine_stoppen")
    assert file.read_text(encoding="utf-8") == text  # nothing saved until asked

    expect(page.locator("#publish")).to_be_disabled()  # it publishes the saved file: save first
    page.click("#save")
    expect(page.locator("#save-status")).to_contain_text("Saved")
    assert "stoppen Eerst" in file.read_text(encoding="utf-8")
    expect(page.locator("#publish")).to_be_enabled()
    page.click("#publish")  # same version number, other content: refused with the reason
    expect(page.locator("#publish-result")).to_contain_text("is published already with other content")
    assert [m for m in console_errors if "Content Security Policy" in m] == []
