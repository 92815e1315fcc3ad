"""`pathways diff`: the changes between two pathway versions, grouped by section for a coordinator."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pathways.definition.diff import SECTIONS, Change

_MARK = {"added": "+", "removed": "-", "changed": "~"}


def render_diff(label_from: str, label_to: str, changes: list[Change], out: Console) -> None:
    out.print(f"{label_from} -> {label_to}", markup=False)
    if not changes:
        out.print("no changes", markup=False)
        return
    count = len(changes)
    out.print(f"{count} change{'s' if count != 1 else ''}", markup=False)
    for section, heading in SECTIONS.items():
        rows = [c for c in changes if c.section == section]
        if not rows:
            continue
        table = Table(title=heading, title_justify="left", show_header=False, box=None, pad_edge=False)
        table.add_column(no_wrap=True)
        table.add_column()
        for change in rows:
            table.add_row(_MARK[change.kind], change.sentence)
        out.print()
        out.print(table)
