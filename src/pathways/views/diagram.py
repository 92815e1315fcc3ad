"""`pathways diagram`: the pathway as a Mermaid flowchart, and an offline HTML page.

The page inlines mermaid.min.js from the npm package installed by the README's set-up
(no CDN, nothing fetched when the page opens). ``PATHWAYS_MERMAID_JS`` names another copy.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from pathways.definition.loader import LoadedPathway
from pathways.definition.model import STAGES, Step
from pathways.views.show import STAGE_TITLES, describe_timing

VENDOR = Path(__file__).parent / "vendor"
MERMAID_VERSION = "12.3.0"


class DiagramError(Exception):
    pass


def _label(text: str, width: int = 38) -> str:
    """Text for a quoted Mermaid label: wrapped, with Mermaid's entity codes for risky characters."""
    lines = []
    for part in text.split("\n"):
        lines.extend(textwrap.wrap(part, width) or [""])
    escaped = [
        line.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
        for line in lines
    ]
    return "<br/>".join(escaped)


def mermaid(loaded: LoadedPathway) -> str:
    spec = loaded.spec
    lines = [
        "---",
        f"title: {spec.title.nl} ({spec.id} {spec.version})",
        "---",
        "flowchart TD",
        "  classDef gate fill:#fff7d6,stroke:#b08900,color:#222",
        "  classDef spoed fill:#fde2e1,stroke:#c0392b,color:#222",
        "  classDef regulier fill:#fdf0e1,stroke:#d68910,color:#222",
        "  classDef step fill:#e8f1fb,stroke:#2e6da4,color:#222",
        f'  start(["Inclusie: {_label(spec.indication.when.text, 60)}"])',
    ]
    by_id = {s.id: s for s in spec.steps}
    edges: list[str] = []
    for number, stage in enumerate(STAGES, start=1):
        steps = [s for s in spec.steps if s.stage == stage]
        if not steps:
            continue
        lines.append(f'  subgraph stage_{stage}["{STAGE_TITLES[stage]}"]')
        lines.append("    direction TB")
        for step in steps:
            lines.extend("    " + line for line in _step_nodes(step))
        lines.append("  end")
        for step in steps:
            edges.extend(_step_edges(step, by_id))
    lines.extend("  " + e for e in edges)
    return "\n".join(lines) + "\n"


def _step_nodes(step: Step) -> list[str]:
    who = f"{step.discipline}" + (f" · {step.financing}" if step.financing != "zvw" else "")
    timing = "" if step.timing is None else f"\n({describe_timing(step.timing, step.requires)})"
    label = _label(f"{step.title.nl}\n[{who}]{timing}")
    if step.escalation is not None:
        e = step.escalation
        return [
            f'{step.id}__trigger{{"{_label(e.trigger.text)}"}}:::gate',
            f'{step.id}["{label}<br/>→ {_label(e.action)}, meld: {_label(", ".join(e.notify))}"]:::{e.severity}',
        ]
    nodes = [f'{step.id}["{label}"]:::step']
    if step.gate is not None:
        nodes.insert(0, f'{step.id}__gate{{"{_label(step.gate.text)}"}}:::gate')
    return nodes


def _step_edges(step: Step, by_id: dict[str, Step]) -> list[str]:
    if step.escalation is not None:
        return [
            f"stage_reviews -. bewaking .-> {step.id}__trigger" if "reviews" in {s.stage for s in by_id.values()} else f"start -.-> {step.id}__trigger",
            f"{step.id}__trigger -->|{step.escalation.severity}| {step.id}",
        ]
    target = f"{step.id}__gate" if step.gate is not None else step.id
    sources = [r for r in step.requires if r in by_id]
    if step.timing is not None and step.timing.after in by_id and step.timing.after not in sources:
        sources.append(step.timing.after)
    edges = [f"{source} --> {target}" for source in sources] or [f"start --> {target}"]
    if step.gate is not None:
        edges.append(f"{step.id}__gate -->|ja| {step.id}")
    return edges


def mermaid_js(configured: str | Path | None = None) -> str:
    """The Mermaid renderer's script, to inline in a page: the vendored copy, or ``configured``
    (the settings' PATHWAYS_MERMAID_JS, passed by the command that writes the page)."""
    path = Path(configured) if configured else VENDOR / "mermaid.min.js"
    if not path.is_file():
        raise DiagramError(
            f"the Mermaid renderer is not installed ({path} is missing); run the README's set-up "
            f"(it installs mermaid {MERMAID_VERSION} from the npm registry) or set PATHWAYS_MERMAID_JS"
        )
    script = path.read_text(encoding="utf-8")
    return script.replace("</script", "<\\/script")


def write_html(loaded: LoadedPathway, text: str, out: Path, renderer: str | Path | None = None) -> None:
    """Write a self-contained page; the renderer is inlined, nothing is fetched when it opens
    (``renderer``: another copy of mermaid.js, as ``mermaid_js`` takes it)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("pathways.views", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    spec = loaded.spec
    page = env.get_template("diagram.html.j2").render(
        spec=spec,
        source_file=loaded.file,
        diagram=text,
        mermaid_js=mermaid_js(renderer),
        mermaid_version=MERMAID_VERSION,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)  # never leave a half-written page


__all__ = ["DiagramError", "mermaid", "mermaid_js", "write_html"]
