"""The coordinator's journey in a real browser (Debian's Chromium through Playwright, nothing
downloaded): log in, open the editor of a pathway, make a typo and see the problem at its line
(a lint diagnostic from the server's check), fix it, change a step's title and see the diagram
follow. The server is the real `pathways web` on a free port over a copy of the pathways
(PATHWAYS_PATH), stopped by the fixture."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from web_setup import TODAY, password, seed

pytestmark = pytest.mark.browser

VENDOR = ROOT / "src" / "pathways" / "views" / "vendor"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    for bundle in ("codemirror.min.js", "mermaid.min.js"):
        if not (VENDOR / bundle).is_file():
            pytest.fail(f"{VENDOR / bundle} is missing: run scripts/setup.sh (it fetches and bundles it)")
    pathways = tmp_path / "network"
    shutil.copytree(ROOT / "pathways", pathways)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    seed(url)
    port = _free_port()
    env = {**os.environ, "PATHWAYS_DATABASE_URL": url, "PATHWAYS_TODAY": TODAY.isoformat(), "PATHWAYS_WEB_SECRET": "w" * 40,
           "PYTHONPATH": str(ROOT / "src"), "DO_NOT_TRACK": "1", "PATHWAYS_IDENTITY_SECRET": "s" * 32, "PATHWAYS_PATH": str(pathways)}
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "pathways.cli", "web", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # until it accepts connections (not a timed assertion: a bound on waiting)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(f"pathways web did not start:\n{(tmp_path / 'web.log').read_text()[-3000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", pathways / "diabetes" / "pathway.yaml"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _place_cursor(page, text: str, after: str) -> int:
    """Put the editor's cursor just after the first ``after`` in the document; its line number."""
    offset = text.index(after) + len(after)
    page.evaluate("offset => { const v = window.pathwaysEditor; v.focus(); v.dispatch({selection: {anchor: offset}}); }", offset)
    return text[:offset].count("\n") + 1


def test_a_coordinator_sees_a_typo_at_its_line_fixes_it_and_sees_the_diagram_change(server, chromium):
    from playwright.sync_api import expect, sync_playwright

    base, file = server
    text = file.read_text(encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
            page.goto(f"{base}/pathways/diabetes/edit")
            page.fill("#name", "coord-ben")
            page.fill("#password", password("coord-ben"))
            page.click("button[type=submit]")
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
            assert [m for m in console if "Content Security Policy" in m] == []
        finally:
            browser.close()
