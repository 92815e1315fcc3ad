"""The audit report: one self-contained HTML file (jinja2; plots as inline SVG from matplotlib,
the diagram rendered by the inlined Mermaid): timeline, decision explanations, the diagram of
the pathway version used, quality indicators with plots, and the chain's verification stamp."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

from pathways.store.vocabulary import Action
from pathways.views.audit import Catalog, Indicators, timeline


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _png(figure) -> str:
    import base64

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def plots(ind: Indicators, image: str = "svg") -> dict[str, str]:
    """Plots of the indicators (none for an empty series): inline SVG, or with ``image="png"`` PNG
    data addresses for an ``<img>`` (the web's pages allow no inline style, which SVG text uses)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, and readable in a browser
    found: dict[str, str] = {}
    write = _png if image == "png" else _svg
    shares = [("reviews on time", ind.reviews.get("percent_on_time")), ("goals met", ind.goals.get("percent_met"))]
    shares = [(k, v) for k, v in shares if v is not None]
    if shares:
        fig, ax = plt.subplots(figsize=(5, 1.8))
        ax.barh([k for k, _ in shares], [v for _, v in shares], color="#2e6da4")
        ax.set_xlim(0, 100)
        ax.set_xlabel("%")
        for i, (_, v) in enumerate(shares):
            ax.text(min(v + 1, 90), i, f"{v:.0f}%", va="center")
        found["shares"] = write(fig)
        plt.close(fig)
    days = ind.escalation_to_action.get("days") or []
    referral = ind.referral_to_specialist.get("days") or []
    if days or referral:
        fig, ax = plt.subplots(figsize=(5, 2.2))
        series = [s for s in ((days, "escalation -> action"), (referral, "referral -> specialist")) if s[0]]
        ax.boxplot([s[0] for s in series], orientation="horizontal")
        ax.set_yticks(range(1, len(series) + 1), [s[1] for s in series])
        ax.set_xlabel("days")
        found["days"] = write(fig)
        plt.close(fig)
    for fact, months in ind.proms.items():
        fig, ax = plt.subplots(figsize=(5, 2.2))
        labels = [m["month"] for m in months]
        for i, m in enumerate(months):
            ax.scatter([i] * len(m["values"]), m["values"], color="#9bb7d4", s=12)
        ax.plot(range(len(months)), [m["median"] for m in months], color="#2e6da4", marker="o", label="median")
        ax.set_xticks(range(len(months)), labels)
        ax.set_title(f"PROM {fact}")
        ax.legend(loc="best")
        found[f"prom:{fact}"] = write(fig)
        plt.close(fig)
    return found


def render(out: Path, *, title: str, subject: dict[str, Any], entries: list[dict[str, Any]], catalog: Catalog,
           indicators: Indicators | None, verification: Any, generated: dt.datetime, version_keys: list[str],
           renderer: str | Path | None = None) -> None:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    from pathways.views.diagram import MERMAID_VERSION, mermaid, mermaid_js

    env = Environment(loader=PackageLoader("pathways.views", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined)
    diagrams = []
    for key in version_keys:
        if catalog.get(key) is not None:
            diagrams.append({"key": key, "text": mermaid(catalog.loaded(key))})
    decisions = [e for e in entries if e["action"].split(".")[0] in ("step", "escalation", "goal", "indication") and e["action"] != Action.STEP_DONE]
    page = env.get_template("audit_report.html.j2").render(
        title=title, subject=subject, generated=generated.isoformat(timespec="seconds"),
        timeline_nl=timeline(entries, catalog, "nl"), timeline_en=timeline(entries, catalog, "en"),
        decisions=decisions, indicators=indicators.to_json() if indicators else None,
        plots=plots(indicators) if indicators else {}, verification=verification, diagrams=diagrams,
        mermaid_js=mermaid_js(renderer) if diagrams else "", mermaid_version=MERMAID_VERSION,
    )
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)  # a report is whole or absent
