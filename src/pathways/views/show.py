"""`pathways show`: a pathway as readable tables, stage by stage."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pathways.definition.loader import LoadedPathway
from pathways.definition.model import STAGES, Step, Timing

STAGE_TITLES = {
    "intake": "1 Intake",
    "anamnesis": "2 Anamnese (anamnesis)",
    "goals": "3 Doelen (goals)",
    "interventions": "4 Interventies (interventions)",
    "reviews": "5 Evaluaties (reviews)",
    "escalation": "6 Escalatie (escalation)",
}


def describe_timing(timing: Timing | None, requires: tuple[str, ...] = ("?",)) -> str:
    if timing is None:
        return "when its requirements are done" if requires else "at enrollment"
    anchor = "enrollment" if timing.after == "enrollment" else timing.after
    parts = []
    if timing.at:
        parts.append("at " + ", ".join(str(d) for d in timing.at))
    elif timing.offset.amount:
        parts.append(f"{timing.offset}")
    else:
        parts.append("at")
    if timing.every is not None:
        parts.append(f"then every {timing.every}")
    text = " ".join(parts) + f" after {anchor}"
    if timing.until is not None:
        text += f", until {timing.until}"
    return text


def condition_text(step: Step) -> str:
    if step.escalation is not None:
        e = step.escalation
        return f"when {e.trigger.text}\n→ {e.severity}: {e.action}, notify {', '.join(e.notify)}"
    return step.gate.text if step.gate is not None else "—"


def render_show(loaded: LoadedPathway, console: Console) -> None:
    if not console.is_terminal:
        console.width = max(console.width, 140)
    spec = loaded.spec
    console.print(f"[bold]{spec.title.nl}[/bold] / {spec.title.en}")
    console.print(f"pathway {spec.id} {spec.version} · owner: {spec.owner} · file: {loaded.file}", markup=False)
    console.print("sources: " + "; ".join(f"{s.title} ({s.version}) [{s.confidence}]" for s in spec.sources), markup=False)
    if spec.uses:
        console.print("uses shared libraries: " + ", ".join(f"{d.model.id} {d.model.version}" for d in loaded.libraries), markup=False)
    indication = f"indicated when {spec.indication.when.text}"
    if spec.indication.exclude is not None:
        indication += f"; excluded when {spec.indication.exclude.text}"
    console.print(indication, markup=False)
    for stage in STAGES:
        steps = [s for s in spec.steps if s.stage == stage]
        if not steps:
            continue
        table = Table(title=STAGE_TITLES[stage], title_justify="left", show_lines=True, expand=True)
        table.add_column("step · discipline · financing", no_wrap=True)
        table.add_column("title", ratio=3, overflow="fold")
        table.add_column("gate / trigger", ratio=3, overflow="fold")
        table.add_column("when · requires", ratio=2, overflow="fold")
        for step in steps:
            title = step.title.nl + (f"\n[dim]{_escape(step.title.en)}[/dim]" if step.title.en else "")
            for goal in step.goals:
                title += f"\ngoal {goal.id}: {goal.fact} {_escape(goal.target)} within {goal.deadline}"
            if step.document:
                title += f"\ndocument: {step.document}"
            when = describe_timing(step.timing, step.requires) if step.stage != "escalation" else "when triggered"
            if step.requires:
                when += "\nrequires " + ", ".join(step.requires)
            table.add_row(
                f"[bold]{step.id}[/bold]\n{step.discipline}\n{step.financing}",
                title,
                _escape(condition_text(step)),
                when,
            )
        console.print(table)
    if spec.parameters:
        table = Table(title="Parameters (configurable per care network)", title_justify="left", expand=True)
        table.add_column("parameter")
        table.add_column("value")
        table.add_column("source")
        table.add_column("alternatives")
        sources = {s.id: s for s in spec.sources}
        for name, parameter in spec.parameters.items():
            cited = parameter.evidence
            source = sources[cited.source].title if cited.source in sources else cited.source
            alternatives = "; ".join(f"{a.value} ({a.evidence.source} [{a.evidence.confidence}])" for a in parameter.alternatives)
            table.add_row(
                f"{name}\n[dim]{_escape(parameter.title)}[/dim]",
                f"{parameter.value} {parameter.unit or ''}".strip(),
                _escape(f"{source}, {cited.section or ''} [{cited.confidence}]"),
                _escape(alternatives) or "—",
            )
        console.print(table)
    console.print(
        f"{len(spec.steps)} steps, {len(spec.facts)} facts, {len(spec.parameters)} parameters, {len(spec.rules)} rules",
        markup=False,
    )


def _escape(text: str) -> str:
    return text.replace("[", "\\[")
