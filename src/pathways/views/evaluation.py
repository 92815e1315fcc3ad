"""`pathways evaluate` for people: the decision of every gate at a date, with reasons."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pathways.rules.evaluate import Evaluation
from pathways.rules.reference import truth

STATUS_STYLE = {"due": "green", "not_due": "dim", "gated": "yellow", "escalated": "bold red"}


def _esc(text: str) -> str:
    return text.replace("[", "\\[")


def render_evaluation(result: Evaluation, console: Console, patient: str) -> None:
    if not console.is_terminal:
        console.width = max(console.width, 140)
    console.print(f"[bold]{result.pathway} {result.pathway_version}[/bold] for patient {patient} at {result.at}  (rules {result.version_key})")
    verdict = "[green]indicated[/green]" if result.indicated else "[yellow]not indicated[/yellow]"
    console.print(f"{verdict}: " + _esc("; ".join(result.indication_reasons[-4:])))
    table = Table(title="Steps", title_justify="left", show_lines=False, expand=True)
    table.add_column("step", no_wrap=True)
    table.add_column("stage")
    table.add_column("status", no_wrap=True)
    table.add_column("reasons", ratio=1, overflow="fold")
    for step in result.steps:
        style = STATUS_STYLE[step.status]
        reasons = step.reasons if step.status != "not_due" or step.reasons == ["not indicated"] else [r for r in step.reasons if r.startswith("missing")] or step.reasons[-1:]
        table.add_row(step.id, step.stage, f"[{style}]{step.status}[/{style}]", _esc("\n".join(reasons)))
    console.print(table)
    table = Table(title="Financing eligibility", title_justify="left", expand=True)
    table.add_column("route", no_wrap=True)
    table.add_column("eligible", no_wrap=True)
    table.add_column("reasons", ratio=1, overflow="fold")
    for route, entry in result.eligibility.items():
        table.add_row(route, truth(entry["eligible"]), _esc("\n".join(entry["reasons"])))
    console.print(table)
    if result.escalations:
        table = Table(title="Escalations", title_justify="left", expand=True)
        for column in ("step", "severity", "action", "notify"):
            table.add_column(column, no_wrap=True)
        for e in result.escalations:
            table.add_row(e.id, e.severity, e.action, ", ".join(e.notify))
        console.print(table)
    else:
        console.print("no escalations")
