"""The documents for engineers stay current: every module and file that docs/architecture.md
names exists, and every code location that docs/performance.md gives for a deviation from a
library's default exists and holds the name it points at."""

from __future__ import annotations

import re

from conftest import ROOT

DOCS = ROOT / "docs"
ARCHITECTURE = (DOCS / "architecture.md").read_text(encoding="utf-8")
PERFORMANCE = (DOCS / "performance.md").read_text(encoding="utf-8")
FILE = re.compile(r"(?<![\w/.])((?:src|tests|bench|docs|pathways)/[\w/.-]+\.(?:py|md|yaml|toml))")


def linked_files(text: str) -> set[str]:
    """Markdown link targets that are files of the repository (relative to docs/)."""
    return {target for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in target}


def module_file(dotted: str):
    """``pathways.a.b`` -> its file (a module or a package), or None."""
    base = ROOT / "src" / dotted.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_every_file_the_architecture_links_exists():
    links = linked_files(ARCHITECTURE)
    assert len(links) > 40  # the walk through the code is made of links
    missing = sorted(link for link in links if not (DOCS / link).resolve().exists())
    assert missing == []


def test_every_path_and_module_the_architecture_names_exists():
    paths = set(FILE.findall(ARCHITECTURE))
    modules = set(re.findall(r"`(pathways(?:\.\w+)+)`", ARCHITECTURE))
    for line in ARCHITECTURE.splitlines():  # the layer diagram: "pathways.cli | pathways.web ..."
        modules.update(re.findall(r"\b(pathways(?:\.\w+)+)\b", line) if line.startswith("  pathways.") else [])
    assert {"pathways.cli", "pathways.web", "pathways.runtime", "pathways.interrupt"} <= modules
    missing = sorted(p for p in paths if not (ROOT / p).exists() and "<" not in p)
    missing += sorted(m for m in modules if module_file(m) is None)
    assert missing == []


def contracts() -> list[dict]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def test_the_layer_diagram_is_the_contracts():
    """The diagram's rows, top to bottom, are the layers contract's layers; each line inside a
    package lists that package's contract, in order."""
    layers = next(c for c in contracts() if c["name"].startswith("Layers"))["layers"]
    diagram = [line.split("   ")[0].strip() for line in ARCHITECTURE.split("```")[1].splitlines() if line.startswith("  pathways.")]
    assert diagram == layers
    inside = dict(re.findall(r"^Inside `(\w+)`:(.*?)\.$", ARCHITECTURE, re.M | re.S))
    assert set(inside) == {"definition", "rules"}
    for package, chain in inside.items():
        written = [" | ".join(f"pathways.{package}.{n.strip()}" for n in layer.split("|")) for layer in re.findall(r"`([^`]+)`", chain)]
        contract = next(c for c in contracts() if c["name"].startswith(f"Inside {package}"))["layers"]
        assert written == contract, package
        missing = [n for layer in contract for n in layer.split(" | ") if module_file(n) is None]
        assert missing == [], package


def locations() -> list[tuple[str, list[str]]]:
    """The last cell of every table row of docs/performance.md that names a file: (file, names)."""
    found = []
    for row in re.findall(r"^\|.*\| (`(?:src|bench)/[^|]+) \|$", PERFORMANCE, re.M):
        file, *names = re.findall(r"`([^`]+)`", row)
        found += [(n, []) for n in names if n.startswith(("src/", "bench/"))]  # a second file in the same cell
        names = [n for n in names if not n.startswith(("src/", "bench/"))]
        found.append((file, [re.match(r"[\w.]+", n).group(0) for n in names if re.match(r"[\w.]+", n)]))
    return found


def test_every_deviation_names_a_place_that_exists():
    found = locations()
    assert len(found) >= 25
    missing = []
    for file, names in found:
        path = ROOT / file
        if not path.is_file():
            missing.append(file)
            continue
        text = path.read_text(encoding="utf-8")
        missing += [f"{file}: {name}" for name in names if name.rsplit(".", 1)[-1] not in text]
    assert missing == []


def test_the_settings_named_in_performance_exist():
    service = (ROOT / "src" / "pathways" / "orchestration" / "settings.py").read_text(encoding="utf-8")
    for name in ("worker_count", "batch_size", "PATHWAYS_WORKERS", "PATHWAYS_BATCH_SIZE"):
        assert name in PERFORMANCE and name in service
    assert (ROOT / "bench" / "HISTORY.md").is_file() and "bench/HISTORY.md" in PERFORMANCE


def test_the_settings_and_pragmas_performance_quotes_are_in_the_code():
    flows = "".join((ROOT / "src" / "pathways" / "orchestration" / name).read_text(encoding="utf-8")
                    for name in ("flows.py", "prefect_edge.py"))  # the flows and the edge that configures Prefect for them
    db = (ROOT / "src" / "pathways" / "store" / "connect.py").read_text(encoding="utf-8")  # the engine and its pragmas
    bench = (ROOT / "bench" / "cohort.py").read_text(encoding="utf-8")
    settings = set(re.findall(r"`(PREFECT_[A-Z_]+)", PERFORMANCE))
    assert len(settings) >= 8
    assert sorted(s for s in settings if s not in flows and s not in bench) == []
    pragmas = set(re.findall(r"`PRAGMA (\w+ = \w+)`", PERFORMANCE))
    assert {"journal_mode = WAL", "busy_timeout = 5000", "foreign_keys = ON"} <= pragmas
    assert sorted(p for p in pragmas if f"PRAGMA {p}" not in db) == []

