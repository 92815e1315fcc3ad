"""`pathways plan`: a patient's one personal plan as readable tables (appointments with the
steps and measurements they bundle, conflicts between pathways, goals)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pathways.runtime.plan import PRIORITIES


def print_plan(console: Console, plan: dict[str, Any]) -> None:
    pathways = ", ".join(f"{p['pathway']} {p['version']} ({p['enrollment']})" for p in plan["pathways"])
    console.print(Text(f"personal plan of {plan['patient']} on {plan['at']}: {pathways}; "
                       f"steps of one discipline within {plan['window_days']} days are one appointment"))
    table = Table(title="Appointments", title_justify="left")
    for column in ("date", "discipline", "steps (pathway: step, due on)", "measure once", "why"):
        table.add_column(column, overflow="fold")
    for a in plan["appointments"]:
        steps = "\n".join(f"{s['pathway']}: {s['step']} ({s['status']}, {s['due_on']})" for s in a["steps"])
        measured = "\n".join(f"{m['fact']} ({', '.join(m['pathways'])})" for m in a["measurements"])
        table.add_row(a["date"], a["discipline"], Text(steps), Text(measured), Text(a["decision"]["why"]))
    console.print(table)
    if plan["conflicts"]:
        table = Table(title="Conflicts between pathways", title_justify="left")
        for column in ("rule", "steps", "reasons", "action", "source"):
            table.add_column(column, overflow="fold")
        for c in plan["conflicts"]:
            ev = c["evidence"]
            table.add_row(c["rule"], Text("\n".join(f"{s['pathway']}: {s['step']}" for s in c["steps"])), Text("\n".join(c["reasons"])),
                          Text(c["action"]), Text(f"{ev['source']}, {ev.get('section', '-')} [{ev['confidence']}]"))
        console.print(table)
    else:
        console.print("no conflicts between the pathways")
    if plan.get("escalations"):
        table = Table(title="Open escalations (close one: pathways plan PATIENT --resolve RULE --reason TEXT)", title_justify="left")
        for column in ("rule", "severity", "action", "steps", "opened on"):
            table.add_column(column, overflow="fold")
        for e in plan["escalations"]:
            table.add_row(e["rule"], e["severity"], e["action"], Text("\n".join(f"{s['pathway']}: {s['step']}" for s in e["steps"])),
                          e["opened_on"])
        console.print(table)
    table = Table(title="Goals (the patient's priorities first)", title_justify="left")
    for column in ("priority", "pathway", "goal", "target", "deadline", "status"):
        table.add_column(column, overflow="fold")
    for g in plan["goals"]:
        rank = f"{g['priority']} ({PRIORITIES[g['priority']]})" if "priority" in g else "-"
        table.add_row(rank, g["pathway"], g["goal"], Text(f"{g['fact']} {g['target']}"), str(g["deadline"]), g["status"])
    console.print(table)
