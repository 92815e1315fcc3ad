"""One care-plan document of one enrollment, rendered as `pathways render` renders it (the
pathway's templates -> Markdown -> HTML -> PDF) and its disclosure written to the audit trail
(``document.rendered``: what was rendered for whom, a hash of it, not the text). Used by the web
application's document downloads; the caller checks the ``document.render`` permission."""

from __future__ import annotations

import datetime as dt

from pathways.definition.documents import DOCUMENTS
from pathways.store.audit import document_rendered
from pathways.views.documents import DocumentError, build_context, render_markdown, to_html, to_pdf

MEDIA_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8"}


def documents_of(runtime) -> list[tuple[str, str]]:
    """(name, English title) of the documents an enrollment of this pathway version may have."""
    named = {s.document for s in runtime.spec.steps if s.document}
    return [(name, DOCUMENTS.get(name, {}).get("en", name)) for name in sorted(set(DOCUMENTS) | named)]


def render_document(store, runtime, state, document: str, fmt: str, lang: str, today: dt.date, identity=None,
                    escalation: str | None = None) -> bytes:
    """The document's bytes in ``fmt`` (md, html or pdf), its disclosure audited (a hash, never
    the text); DocumentError with the reason when it cannot be made."""
    data = make_document(store, runtime, state, document, fmt, lang, today, identity, escalation)
    store.record_audit([document_rendered(state, document, fmt, lang, data, identity is not None)])
    return data


def make_document(store, runtime, state, document: str, fmt: str, lang: str, today: dt.date, identity=None,
                  escalation: str | None = None) -> bytes:
    """The document's bytes in ``fmt`` (md, html or pdf), not yet audited (the caller records the
    disclosure once it is made: `pathways render` after writing the file); DocumentError with the
    reason when it cannot be made (an unknown document, a referral letter without a referral, no
    Pango for PDF)."""
    if document not in {name for name, _ in documents_of(runtime)}:
        raise DocumentError(f"unknown document '{document}' (documents: {', '.join(n for n, _ in documents_of(runtime))})")
    if fmt not in MEDIA_TYPES:
        raise DocumentError(f"format '{fmt}': use one of {', '.join(MEDIA_TYPES)}")
    enrollment = state.enrollment
    context = build_context(runtime.loaded, runtime.evaluator, document, lang, today, state=state,
                            patient_facts=store.patient_facts(state.patient), decisions=store.decisions(enrollment),
                            recorded=store.recorded_inputs(enrollment), identity=identity, escalation_step=escalation)
    markdown = render_markdown(runtime.loaded, document, lang, context)
    if fmt == "md":
        return markdown.encode("utf-8")
    html = to_html(markdown, f"{context['document']['title']}: {context['pathway']['title']}", lang)
    return html.encode("utf-8") if fmt == "html" else to_pdf(html)
