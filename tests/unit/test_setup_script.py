"""scripts/setup.sh and the browser scripts it fetches from the npm registry (mermaid, htmx,
CodeMirror; one function, ``vendor_fetch``): run for real in a copy of the repository's set-up
files, with a stand-in for npm (nothing leaves the machine) and a stand-in .venv (nothing is
installed), so that what it does to src/pathways/views/vendor can be checked."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

SETUP = ROOT / "scripts" / "setup.sh"
VERSIONS = dict(re.findall(r"^(MERMAID_VERSION|HTMX_VERSION)=(\S+)$", SETUP.read_text(encoding="utf-8"), re.M))
TOOLS = ("bash", "cat", "sha256sum", "cut", "mktemp", "mkdir", "cp", "rm", "tar", "gzip", "sed", "grep", "tail", "dirname")
# npm as the registry would answer `npm pack NAME@VERSION`: a tarball of package/ (the calls go to npm.calls)
FAKE_NPM = """#!/bin/bash
echo "$*" >> "$(dirname "$0")/npm.calls"
spec=${!#}  # NAME@VERSION, the last argument
if [ "$1" = pack ] && [ -z "$NPM_FAILS" ]; then
  name=${spec%@*}; version=${spec##*@}
  mkdir -p package/dist && echo "$name $version" > "package/dist/${name%.org}.min.js" && echo "licence of $name" > package/LICENSE
  tar czf "$name-$version.tgz" package && rm -r package && echo "$name-$version.tgz"
  exit 0
fi
echo "npm error code E404"; echo "npm error 404 Not Found - GET https://registry.npmjs.org/$spec"
exit 1
"""


@pytest.fixture
def repository(tmp_path) -> Path:
    """The files setup.sh reads, in a folder of their own, with a vendor folder complete as the
    last run left it (small stand-ins for the scripts, their stamps right), a .venv whose stamp
    says it is up to date (its python succeeds at everything: nothing is installed) and a bin/
    of the tools the script uses, without npm."""
    here = tmp_path / "repo"
    for name in ("scripts/setup.sh", "scripts/codemirror/package.json", "scripts/codemirror/package-lock.json",
                 "scripts/codemirror/entry.js", "pyproject.toml", "constraints.txt"):
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, here / name)
    venv = here / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text("#!/bin/sh\nexit 0\n")
    (venv / "python").chmod(0o755)
    installed = hashlib.sha256((here / "pyproject.toml").read_bytes() + (here / "constraints.txt").read_bytes()).hexdigest()
    (here / ".venv" / ".pathways-installed").write_text(installed + "\n")
    vendor = here / "src" / "pathways" / "views" / "vendor"
    vendor.mkdir(parents=True)
    for name in ("mermaid.min.js", "LICENSE", "htmx.min.js", "HTMX_LICENSE", "codemirror.min.js", "CODEMIRROR_LICENSE"):
        (vendor / name).write_text(f"{name} as fetched before\n")
    codemirror = hashlib.sha256((here / "scripts/codemirror/package-lock.json").read_bytes()
                                + (here / "scripts/codemirror/entry.js").read_bytes()).hexdigest()
    stamps = {"VERSION": VERSIONS["MERMAID_VERSION"], "HTMX_VERSION": VERSIONS["HTMX_VERSION"], "CODEMIRROR_VERSION": codemirror}
    for name, stamp in stamps.items():
        (vendor / name).write_text(stamp + "\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in TOOLS:
        (tools / tool).symlink_to(shutil.which(tool))
    return here


def setup(here: Path, npm: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run the copy of setup.sh in ``here``; with ``npm``, that script stands in for npm."""
    if npm:
        (here.parent / "bin" / "npm").write_text(npm)
        (here.parent / "bin" / "npm").chmod(0o755)
    environment = {"PATH": str(here.parent / "bin"), "PYTHON": "python3", "HOME": str(here.parent), **env}
    return subprocess.run(["bash", str(here / "scripts" / "setup.sh")], env=environment, capture_output=True, text=True, timeout=60)


def vendor_files(here: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((here / "src" / "pathways" / "views" / "vendor").iterdir())}


def test_a_complete_vendor_folder_is_used_as_it_is_without_npm(repository):
    before = vendor_files(repository)
    done = setup(repository)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert vendor_files(repository) == before


def test_a_missing_file_is_fetched_with_its_licence_and_stamp_and_nothing_else(repository):
    vendor = repository / "src" / "pathways" / "views" / "vendor"
    (vendor / "HTMX_LICENSE").unlink()  # the script itself is there, its licence not: fetched again
    before = vendor_files(repository)
    done = setup(repository, FAKE_NPM)
    htmx = VERSIONS["HTMX_VERSION"]
    assert (done.returncode, done.stdout, done.stderr) == (0, f"setup: fetching htmx {htmx} from the npm registry\n", "")
    assert (repository.parent / "bin" / "npm.calls").read_text() == f"pack --no-fund htmx.org@{htmx}\n"
    assert vendor_files(repository) == {**before, "htmx.min.js": f"htmx.org {htmx}\n", "HTMX_LICENSE": "licence of htmx.org\n",
                                        "HTMX_VERSION": f"{htmx}\n"}


def test_another_pinned_version_is_fetched(repository):
    vendor = repository / "src" / "pathways" / "views" / "vendor"
    (vendor / "VERSION").write_text("11.0.0\n")  # what an older set-up fetched
    done = setup(repository, FAKE_NPM)
    mermaid = VERSIONS["MERMAID_VERSION"]
    assert done.returncode == 0, done.stderr
    assert (vendor / "mermaid.min.js").read_text() == f"mermaid {mermaid}\n"
    assert (vendor / "VERSION").read_text() == f"{mermaid}\n"


def test_without_npm_the_error_says_what_is_missing_and_how_to_get_it(repository):
    (repository / "src" / "pathways" / "views" / "vendor" / "htmx.min.js").unlink()
    done = setup(repository)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"setup: npm is needed once to fetch htmx {VERSIONS['HTMX_VERSION']} for the web application: "
                           "install it (apt-get install npm) and run again\n")


def test_a_failed_fetch_says_so_with_npms_words_and_leaves_the_vendor_folder_as_it_was(repository):
    (repository / "src" / "pathways" / "views" / "vendor" / "htmx.min.js").unlink()
    before = vendor_files(repository)
    done = setup(repository, FAKE_NPM, NPM_FAILS="1", TMPDIR=str(repository.parent))
    htmx = VERSIONS["HTMX_VERSION"]
    assert done.returncode == 1
    assert done.stderr == (f"setup: fetching htmx {htmx} from the npm registry failed; check the network (or npm's proxy settings) "
                           "and run again. npm said:\n  npm error code E404\n"
                           f"  npm error 404 Not Found - GET https://registry.npmjs.org/htmx.org@{htmx}\n")
    assert vendor_files(repository) == before
    assert sorted(p.name for p in repository.parent.iterdir()) == ["bin", "repo"]  # its temporary folder removed
