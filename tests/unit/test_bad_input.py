"""Bad input never crashes: a clear message with the place, exit 1, nothing written."""

from __future__ import annotations

import shutil

import pytest

from conftest import PATHWAYS_DIR, run_cli


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_10_mb_file_is_refused_before_parsing(tmp_path):
    big = _write(tmp_path / "big" / "pathway.yaml", b"pathway: big\ndescription: " + b"x" * 10_000_000 + b"\n")
    done = run_cli("validate", str(big))
    assert done.returncode == 1
    assert f"{big}:1:1: PW004 the file is 10.0 MB, over the 1 MB limit for a pathway definition" in done.stderr
    assert "Traceback" not in done.stderr


def test_deep_nesting_is_reported_not_a_crash(tmp_path):
    # libyaml's composer recurses in C and segfaults on this; we must measure depth first
    deep = _write(tmp_path / "deep" / "pathway.yaml", b"pathway: deep\nx: " + b"[" * 50_000 + b"]" * 50_000 + b"\n")
    done = run_cli("validate", str(deep))
    assert done.returncode == 1, done.stderr
    assert f"{deep}:2:" in done.stderr and "PW005 the YAML nests deeper than 64 levels" in done.stderr


def test_an_alias_bomb_is_stopped(tmp_path):
    lines = ["pathway: bomb", "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i, name in enumerate("bcdefgh"):
        previous = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    bomb = _write(tmp_path / "bomb" / "pathway.yaml", "\n".join(lines).encode() + b"\n")
    done = run_cli("validate", str(bomb))
    assert done.returncode == 1
    assert "PW008 the YAML expands to more than 100000 nodes" in done.stderr


def test_missing_file_and_folder_without_pathways(tmp_path):
    (tmp_path / "empty_folder").mkdir()
    done = run_cli("validate", str(tmp_path / "nope.yaml"), str(tmp_path / "empty_folder"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{tmp_path / 'empty_folder'}: PW007 no pathway.yaml or _shared/*.yaml files in this folder (name a folder of pathways, a file or a pathway name)",
        f"{tmp_path / 'nope.yaml'}: PW007 no such file (check the path)",
        "2 problems found",
    ]


def test_all_files_are_reported_in_one_run(tmp_path):
    root = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR, root)
    _write(root / "a" / "pathway.yaml", b"")
    _write(root / "b" / "pathway.yaml", b"pathway: b\nversion: [\n")
    done = run_cli("validate", str(root))
    assert done.returncode == 1
    codes = [line.split(": ")[1].split(" ")[0] for line in done.stderr.splitlines()[:-1]]
    assert codes == ["PW003", "PW001", "PW051"]  # PW051: the shipped COPD pathway's warning
    assert done.stderr.splitlines()[-1] == "2 problems found, 1 warning"


def test_unknown_pathway_name_suggests_the_closest(cli):
    done = cli("show", "diabetis")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == "diabetis: PW007 unknown pathway 'diabetis' (did you mean 'diabetes'?)"


def test_diagram_of_a_broken_pathway_writes_nothing(tmp_path):
    root = tmp_path / "pathways"
    shutil.copytree(PATHWAYS_DIR, root)
    broken = root / "copd" / "pathway.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace("gate: malnutrition", "gate: malnutritoin"), encoding="utf-8")
    out = tmp_path / "out" / "copd.html"
    done = run_cli("diagram", str(root / "copd"), "--html", str(out))
    assert done.returncode == 1
    assert "PW021 unknown name 'malnutritoin' (did you mean 'malnutrition'?)" in done.stderr
    assert not out.exists() and not out.parent.exists()


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"pathway: x\n\ttitle: y\n", b"{{{{"])
def test_garbage_is_a_clear_error(tmp_path, content):
    path = _write(tmp_path / "g" / "pathway.yaml", content)
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"{path}:1:") or done.stderr.startswith(f"{path}:2:")
    assert "Traceback" not in done.stderr


def test_a_wrongly_indented_line_gets_an_indentation_hint(tmp_path):
    path = _write(tmp_path / "i" / "pathway.yaml", b"pathway: x\nversion: 1.0.0\n  title: oops\n")
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        f"{path}:3:8: PW001 mapping values are not allowed in this context "
        "(this line is indented deeper than the key above it, or a value holds ': ' and needs quotes)"
    )
