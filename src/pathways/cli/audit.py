"""`pathways audit`: read and verify the audit trail (auditors and admins)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pathways.cli import ui
from pathways.cli.common import _clock, _parse_date, _places, _require, _settings, _today
from pathways.cli.ui import fail
from pathways.store.vocabulary import Action, Key


audit_app = typer.Typer(help="Read and verify the audit trail (auditors and admins).", no_args_is_help=True)


DEFAULT_LOG_FIELDS = ("seq", "at", "actor", "role", "action", "enrollment_id", "subject")


def _reader(permission_what: str):
    """The store's audit trail, read-only, for auditors: nothing is created or written (the
    store opens and closes the connections)."""
    from pathways.orchestration.service import database_url
    from pathways.store.connect import open_trail
    from pathways.store.db import StoreError

    _require("audit.read", permission_what)
    try:
        return open_trail(database_url())
    except StoreError as exc:
        fail(f"error: {exc}")


def _catalog(trail):
    from pathways.store.audit import Query
    from pathways.views.audit import Catalog

    return Catalog(trail.entries(Query(action=Action.PATHWAY_PUBLISHED)), _places())


def _period(text: str):
    from pathways.views.audit import parse_period

    try:
        return parse_period(text)
    except ValueError as exc:
        fail(f"error: --period: {exc}")


def _known_pathway(trail, name: str) -> None:
    known = trail.pathway_names()
    if name not in known:
        from pathways.errors import did_you_mean

        hint = did_you_mean(name, known) or ("known: " + ", ".join(known) if known else "the trail names no pathway yet")
        fail(f"error: no pathway '{name}' in the audit trail ({hint})")


def _known_enrollment(trail, enrollment: str) -> None:
    if not trail.has_enrollment(enrollment):
        from pathways.orchestration.service import database_url
        from pathways.store.connect import shown

        fail(f"error: unknown enrollment '{enrollment}': the audit trail in {shown(database_url())} has no entry for it")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[Optional[str], typer.Option("--anchor", help="SEQ:HASH kept from an earlier verification")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Recompute the hash chain; name the first broken entry. Exit 0 intact, 1 broken."""
    import json

    parsed = None
    if anchor is not None:
        seq, sep, digest = anchor.partition(":")
        if not (sep and seq.isdigit() and len(digest) == 64):
            fail(f"error: --anchor '{anchor}' is not SEQ:HASH (a sequence number and a 64-character SHA-256)")
        parsed = (int(seq), digest.lower())
    result = _reader("verify the audit trail").verify(parsed)
    if as_json:
        ui.out.print(json.dumps({"intact": result.intact, "entries": result.entries, "head_seq": result.head_seq, "head_hash": result.head_hash,
                              "broken_at": result.broken_at, "reason": result.reason or None}), markup=False)
    elif result.intact:
        ui.out.print(f"intact: {result.entries} entries; head {result.head_seq}:{result.head_hash}", markup=False)
    else:
        ui.out.print(f"BROKEN at entry {result.broken_at}: {result.reason}", markup=False)
    if not result.intact:
        raise typer.Exit(1)


@audit_app.command("log")
def audit_log(
    patient: Annotated[Optional[str], typer.Option("--patient", help="Pseudonymous patient id")] = None,
    enrollment: Annotated[Optional[str], typer.Option("--enrollment")] = None,
    pathway: Annotated[Optional[str], typer.Option("--pathway")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="From this day (YYYY-MM-DD)")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Up to and including this day")] = None,
    actor: Annotated[Optional[str], typer.Option("--actor")] = None,
    action: Annotated[Optional[str], typer.Option("--action", help="An action and those under it (escalation: escalation.*), or a prefix ending in '.'")] = None,
    fields: Annotated[Optional[str], typer.Option("--fields", help="Comma-separated columns to show")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    as_csv: Annotated[bool, typer.Option("--csv")] = False,
) -> None:
    """The audit entries, filtered; as a table, JSON or CSV."""
    import json

    from pathways.store.audit import Query
    from pathways.views.audit import LOG_FIELDS, write_csv

    if as_json and as_csv:
        fail("error: give --json or --csv, not both", code=2)
    chosen = tuple(f.strip() for f in fields.split(",") if f.strip()) if fields else (LOG_FIELDS if (as_json or as_csv) else DEFAULT_LOG_FIELDS)
    unknown = [f for f in chosen if f not in LOG_FIELDS]
    if unknown or not chosen:
        from pathways.errors import did_you_mean

        hint = did_you_mean(unknown[0], LOG_FIELDS) if unknown else None
        fail(f"error: --fields: unknown field {', '.join(repr(u) for u in unknown) or '(none given)'}"
                  f"{' (' + hint + ')' if hint else ''}; fields: {', '.join(LOG_FIELDS)}")
    query = Query(patient, enrollment, pathway, _parse_date(since, "--since"), _parse_date(until, "--until"), actor, action)
    rows = [{f: e[f] for f in chosen} for e in _reader("read the audit log").entries(query)]
    if as_json:
        ui.out.print(json.dumps(rows, ensure_ascii=False, indent=1), markup=False)
    elif as_csv:
        write_csv(sys.stdout, rows, chosen)
    else:
        from rich.table import Table

        if not ui.out.is_terminal:
            ui.out.width = max(ui.out.width, 200)
        table = Table(title=f"audit log: {len(rows)} entries", title_justify="left")
        for f in chosen:
            table.add_column(f, overflow="fold")
        for row in rows:
            table.add_row(*(json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v if v is not None else "") for v in row.values()))
        ui.out.print(table)


@audit_app.command("timeline")
def audit_timeline(
    enrollment: Annotated[str, typer.Argument(help="Enrollment id")],
    lang: Annotated[str, typer.Option("--lang", help="nl or en")] = "nl",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """An enrollment's history as a readable story (Dutch by default, --lang en)."""
    import json

    from pathways.store.audit import Query
    from pathways.views.audit import timeline

    if lang not in ("nl", "en"):
        fail(f"error: --lang '{lang}': use nl or en", code=2)
    trail = _reader(f"read the timeline of {enrollment}")
    _known_enrollment(trail, enrollment)
    rows = timeline(trail.entries(Query(enrollment=enrollment)), _catalog(trail), lang)
    if as_json:
        ui.out.print(json.dumps([{"date": d.isoformat(), "text": t, "seq": e["seq"], "actor": e["actor"], "role": e["role"]} for d, t, e in rows],
                             ensure_ascii=False, indent=1), markup=False)
        return
    for day, text, entry in rows:
        ui.out.print(f"{day} {text}  [#{entry['seq']} {entry['actor']}]", markup=False)


@audit_app.command("show")
def audit_show(decision: Annotated[str, typer.Argument(help="Decision key (e.g. ENROLLMENT:STEP:DATE:gated) or decision id")]) -> None:
    """One decision: outcome, explanation, facts used, rules and versions, Prefect run ids."""
    from pathways.views.decision import decision_detail

    trail = _reader(f"read decision {decision}")
    key, decision_id, found = trail.find_decision(decision)
    detail = decision_detail(key, decision_id, found, _catalog(trail), lang=None) if found else None
    if detail is None:
        fail(f"error: unknown decision '{decision}' (see `pathways audit log --action step.` for keys)")
    ui.out.print("\n".join(detail.lines()), markup=False)


@audit_app.command("indicators")
def audit_indicators(
    pathway: Annotated[str, typer.Option("--pathway", help="Pathway name")],
    period: Annotated[str, typer.Option("--period", help="2026Q1, 2026-03, 2026 or FROM..TO")],
    grace: Annotated[int, typer.Option("--grace", min=0, max=365, help="Days after the due date a review still counts as on time")] = 14,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Quality indicators of a pathway over a period, computed from the audit trail."""
    import json

    from pathways.store.audit import Query
    from pathways.views.audit import indicators
    from pathways.views.plan_indicators import plan_indicators

    chosen = _period(period)
    trail = _reader(f"read indicators of {pathway}")
    _known_pathway(trail, pathway)
    history = trail.entries(Query(pathway=pathway))
    result = indicators(history, _catalog(trail), pathway, chosen, _today(), grace)
    plans = plan_indicators(trail.entries(Query(action="plan.")), {e["patient_id"] for e in history if e["patient_id"]}, chosen)
    data = {**result.to_json(), "personal_plans": plans}
    if as_json:
        ui.out.print(json.dumps(data, ensure_ascii=False, indent=1), markup=False)
        return
    r, e, f, g = data["reviews_on_time"], data["escalation_to_action_days"], data["referral_to_specialist_days"], data["goals_met_by_deadline"]
    ui.out.print(f"{pathway} {chosen.label} ({chosen.start} .. {chosen.end})", markup=False)
    ui.out.print(f"  reviews on time (within {grace} days): {r['percent_on_time'] if r['percent_on_time'] is not None else 'n/a'}% "
              f"({r['on_time']} on time, {r['late_or_missed']} late or missed, {r['pending']} pending)", markup=False)
    ui.out.print(f"  escalation trigger -> action: median {e['median_days'] if e['median_days'] is not None else 'n/a'} days ({e['acted']} acted, {e['open']} open)", markup=False)
    ui.out.print(f"  referral -> first specialist contact: median {f['median_days'] if f['median_days'] is not None else 'n/a'} days "
              f"({f['referrals_with_contact']} with a recorded contact, {f['without_recorded_contact']} without)", markup=False)
    ui.out.print(f"  SMART goals met by their deadline: {g['percent_met'] if g['percent_met'] is not None else 'n/a'}% ({g['met']} met, {g['missed']} missed)", markup=False)
    for fact, months in data["proms"].items():
        ui.out.print(f"  PROM {fact}: " + "; ".join(f"{m['month']} median {m['median']} (n={m['n']})" for m in months), markup=False)
    if not data["proms"]:
        ui.out.print("  PROMs: none recorded in the period", markup=False)
    c = plans["conflicts"]
    share = f"{plans['percent_with_combined_review']}%" if plans["percent_with_combined_review"] is not None else "n/a"
    ui.out.print(f"  multimorbid patients with one combined review: {share} ({plans['with_combined_review']} of {plans['multimorbid_patients']})",
              markup=False)
    ui.out.print(f"  visits saved by bundling: {plans['visits_saved']} ({plans['steps_planned']} steps in the latest plans of "
              f"{plans['patients_with_a_plan']} patient(s))", markup=False)
    how = "; ".join(f"{n} {k}" for k, n in c["resolution"].items()) or "none"
    ui.out.print(f"  conflicts between pathways: {c['found']} found ({', '.join(f'{r} {n}' for r, n in c['by_rule'].items()) or 'none'}); {how}",
              markup=False)


@audit_app.command("report")
def audit_report(
    enrollment: Annotated[Optional[str], typer.Argument(help="Enrollment id (or use --pathway and --period)")] = None,
    pathway: Annotated[Optional[str], typer.Option("--pathway")] = None,
    period: Annotated[Optional[str], typer.Option("--period", help="2026Q1, 2026-03, 2026 or FROM..TO")] = None,
    html: Annotated[Path, typer.Option("--html", help="Where to write the report")] = Path("audit-report.html"),
    grace: Annotated[int, typer.Option("--grace", min=0, max=365)] = 14,
) -> None:
    """One self-contained HTML report: timeline, explanations, diagram, indicators, verification."""
    from pathways.store.audit import Query
    from pathways.views.audit import Period, indicators
    from pathways.views.diagram import DiagramError
    from pathways.views.report import render

    if (enrollment is None) == (pathway is None) or (pathway is not None and period is None):
        fail("error: give an ENROLLMENT, or --pathway NAME with --period", code=2)
    if not html.parent.is_dir():
        fail(f"error: --html {html}: the folder {html.parent} does not exist")
    chosen = _period(period) if period else None
    trail = _reader("write an audit report")
    if enrollment:
        _known_enrollment(trail, enrollment)
    else:
        _known_pathway(trail, pathway)
    catalog = _catalog(trail)
    verification = trail.verify()
    if enrollment:
        selected = trail.entries(Query(enrollment=enrollment))
        name = selected[0]["pathway"]
        history = trail.entries(Query(pathway=name))
        days = [e for e in selected if e["action"] != Action.PATHWAY_PUBLISHED]
        first = min(dt.date.fromisoformat(e["at"][:10]) for e in days)
        span = Period(first, max(_today(), first), f"{first}..{max(_today(), first)}")
        ind = indicators([e for e in history if e.get("enrollment_id") == enrollment], catalog, name, span, _today(), grace)
        subject = {"enrollment": enrollment, "patient (pseudonym)": selected[0]["patient_id"], "pathway": name}
        title = f"Audit: {enrollment}"
    else:
        history = trail.entries(Query(pathway=pathway))
        selected = [e for e in history if e["action"] != Action.PATHWAY_PUBLISHED and
                    chosen.start <= dt.date.fromisoformat((e["payload"].get(Key.DECIDED_ON) or e["at"])[:10]) <= chosen.end]
        ind = indicators(history, catalog, pathway, chosen, _today(), grace)
        subject = {"pathway": pathway, "period": f"{chosen.label} ({chosen.start} .. {chosen.end})", "enrollments": len({e['enrollment_id'] for e in selected if e['enrollment_id']})}
        title = f"Audit: {pathway} {chosen.label}"
    keys = sorted({e["version_key"] for e in selected if e.get("version_key")})
    try:
        render(html, title=title, subject=subject, entries=selected, catalog=catalog, indicators=ind,
               verification=verification, generated=_clock().now(), version_keys=keys, renderer=_settings().mermaid_js)
    except DiagramError as exc:
        fail(f"error: {exc}")
    ui.out.print(f"wrote {html} ({len(selected)} entries; chain {'intact' if verification.intact else 'BROKEN at ' + str(verification.broken_at)})", markup=False)


@audit_app.command("export")
def audit_export(
    fhir: Annotated[Path, typer.Option("--fhir", help="Output file: a FHIR R4 Bundle (JSON), or NDJSON with --ndjson")],
    ndjson: Annotated[bool, typer.Option("--ndjson", help="One resource per line (FHIR bulk data)")] = False,
    enrollment: Annotated[Optional[str], typer.Option("--enrollment")] = None,
    pathway: Annotated[Optional[str], typer.Option("--pathway")] = None,
    since: Annotated[Optional[str], typer.Option("--since")] = None,
    until: Annotated[Optional[str], typer.Option("--until")] = None,
) -> None:
    """Export the trail as FHIR R4 AuditEvent (every entry) and Provenance (every decision)."""
    from pathways.store.audit import Query
    from pathways.views.fhir_audit import ExportError, resources, write

    if not fhir.parent.is_dir():
        fail(f"error: --fhir {fhir}: the folder {fhir.parent} does not exist")
    query = Query(enrollment=enrollment, pathway=pathway, since=_parse_date(since, "--since"), until=_parse_date(until, "--until"))
    selected = _reader("export the audit trail").entries(query)
    try:
        items = resources(selected)
        write(fhir, items, ndjson)
    except ExportError as exc:
        fail(f"error: {exc}; nothing was written")
    kinds = {}
    for r in items:
        kinds[r["resourceType"]] = kinds.get(r["resourceType"], 0) + 1
    ui.out.print(f"wrote {fhir}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), markup=False)
