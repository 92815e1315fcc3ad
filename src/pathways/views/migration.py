"""A migration preview for people: the summary and each enrollment's changes, as a table on the
terminal or as one self-contained HTML page (jinja2, no scripts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def change_text(change: dict[str, Any]) -> str:
    """One change in a line: ``status metformine_starten: due -> gated``."""
    old = "-" if change["old"] is None else change["old"]
    new = "-" if change["new"] is None else change["new"]
    return f"{change['kind']} {change['subject']}: {old} -> {new}"


def why(change: dict[str, Any], most: int = 4) -> list[str]:
    """The reasons that differ between the two versions (the ones that explain the change)."""
    old, new = change.get("reasons_old") or [], change.get("reasons_new") or []

    def holding(reasons: list[str]) -> list[str]:  # the conditions that hold first: they make the outcome
        return sorted(reasons, key=lambda r: ": true" not in r)

    lines = [f"now: {r}" for r in holding([r for r in new if r not in old])][:most]
    lines += [f"was: {r}" for r in holding([r for r in old if r not in new])][:most]
    return lines


def summary_lines(preview: dict[str, Any]) -> list[str]:
    lines = [f"preview {preview['preview']}",
             f"{preview['pathway']}: {', '.join(preview['from'])} -> {preview['to']} at {preview['at']}",
             f"{preview['enrollments']} enrollment(s): {preview['unchanged']} unchanged, {len(preview['changed'])} changed, "
             f"{len(preview['blocked'])} blocked"]
    for entry in preview["changed"]:
        lines.append(f"  {entry['enrollment']}:")
        for change in entry["changes"]:
            lines.append(f"    {change_text(change)}")
            lines += [f"      {line}" for line in why(change)]
    for entry in preview["blocked"]:
        lines.append(f"  {entry['enrollment']} (blocked): " + "; ".join(b["reason"] for b in entry["blocked"]))
    if preview.get("not_considered"):
        lines.append(f"{len(preview['not_considered'])} enrollment(s) run {preview['to'].split('#')[0]} or newer already: not considered")
    return lines


def render_html(preview: dict[str, Any], out: Path) -> None:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("pathways.views", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined)
    page = env.get_template("migration.html.j2").render(p=preview, change_text=change_text)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)  # whole or absent
