"""What people see: of a pathway, `show` tables, `diagram` (Mermaid, offline HTML) and `diff`;
of an evaluation, its table with reasons (``evaluation``) and findings (``findings``); of the
audit trail, timelines, indicators and the report (``audit``, ``report``) and the FHIR
AuditEvent/Provenance export (``fhir_audit``); FHIR PlanDefinition and CarePlan export
(``fhir_export``); care-plan documents (``documents``), a patient's plan (``careplan``) and a
migration preview (``migration``).

Reads checked definitions, evaluations and audit entries handed to it; never imports Prefect or
opens the store; writes nothing but the files it is asked to write.
"""
