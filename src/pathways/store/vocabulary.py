"""The audit trail's vocabulary, defined once: every action an entry can name (``Action``), the
stored decision each runtime event becomes (``DECISION_ACTION``, and back: ``DECISION_KIND``),
the kinds of personal-plan decisions (``PLAN_ACTION``) and the payload keys more than one module
writes or reads (``Key``). docs/audit.md describes each action; tests/unit/test_vocabulary.py checks
that every action written anywhere in the sources is one of these and documented there, and
that every payload key read is one of the keys and written somewhere.

Plain strings (no Enum): what is stored and hashed is exactly the text below.
"""

from __future__ import annotations


class Action:
    """Every action an audit entry can name."""

    PATHWAY_PUBLISHED = "pathway.published"
    PATIENT_CREATED = "patient.created"
    FACTS_ADDED = "facts.added"
    FACTS_DEDUPLICATED = "facts.deduplicated"  # once, by the schema migration 0003
    IDENTITY_STORED = "identity.stored"
    ENROLLMENT_CREATED = "enrollment.created"
    ENROLLMENT_MIGRATED = "enrollment.migrated"
    ENROLLMENT_MIGRATION_REVERTED = "enrollment.migration_reverted"
    INDICATION_INDICATED = "indication.indicated"
    INDICATION_NOT_INDICATED = "indication.not_indicated"
    STEP_DUE = "step.due"
    STEP_GATED = "step.gated"
    STEP_SKIPPED = "step.skipped"
    STEP_DONE = "step.done"
    STEP_DONE_BEFORE = "step.done_before"
    ESCALATION_OPENED = "escalation.opened"
    ESCALATION_RESOLVED = "escalation.resolved"
    INPUT_RECORDED = "input.recorded"
    GOAL_AGREED = "goal.agreed"
    GOAL_MET = "goal.met"
    GOAL_MISSED = "goal.missed"
    GOAL_NOT_MEASURED = "goal.not_measured"
    SIGNOFF_DECLINED = "signoff.declined"
    CONFIG_CHANGED = "config.changed"
    ACCESS_DENIED = "access.denied"
    PLAN_MADE = "plan.made"
    PLAN_BUNDLE = "plan.bundle"
    PLAN_CONFLICT = "plan.conflict"
    PLAN_ESCALATED = "plan.escalated"
    PLAN_RESOLVED = "plan.resolved"
    PLAN_PRIORITY = "plan.priority"
    DOCUMENT_RENDERED = "document.rendered"
    ACCOUNT_ADDED = "account.added"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_BLOCKED = "login.blocked"
    LOGOUT = "logout"
    PATIENT_DATA_READ = "patient_data.read"


ACTIONS: frozenset[str] = frozenset(v for k, v in vars(Action).items() if k.isupper())

# a runtime event's kind (pathways.runtime.core.Event.kind) -> the action of its stored decision
DECISION_ACTION: dict[str, str] = {
    "due": Action.STEP_DUE, "gated": Action.STEP_GATED, "skipped": Action.STEP_SKIPPED, "done": Action.STEP_DONE,
    "escalated": Action.ESCALATION_OPENED, "resolved": Action.ESCALATION_RESOLVED, "done_before": Action.STEP_DONE_BEFORE,
    "goal_agreed": Action.GOAL_AGREED, "goal_met": Action.GOAL_MET, "goal_missed": Action.GOAL_MISSED,
    "goal_not_measured": Action.GOAL_NOT_MEASURED,
    "indicated": Action.INDICATION_INDICATED, "not_indicated": Action.INDICATION_NOT_INDICATED,
}
DECISION_KIND: dict[str, str] = {action: kind for kind, action in DECISION_ACTION.items()}

# the families of decisions (``audit log --action step.`` and the FHIR AuditEvent export)
DECISION_PREFIXES = ("step.", "escalation.", "goal.", "indication.")

# a personal plan's decision kind (pathways.runtime.plan) -> its action
PLAN_ACTION: dict[str, str] = {"bundle": Action.PLAN_BUNDLE, "conflict": Action.PLAN_CONFLICT}


class Key:
    """Payload keys written in one module and read in another (the views, the audit commands,
    the FHIR export, orchestration). The runtime and the planner below the store write a
    decision's detail and a plan's decisions with the same words spelt out (they may not import
    the store): those keys are named here for their readers. tests/unit/test_vocabulary.py checks
    that every key read from a payload is one of these and is written somewhere, and that no
    module above the runtime spells one out again where it writes or reads a payload."""

    # every decision (store/db.py: a runtime Event as stored)
    KIND = "kind"
    STEP = "step"
    DUE_ON = "due_on"
    DECIDED_ON = "decided_on"
    REASONS = "reasons"
    CONTEXT = "context"  # store/audit.py: the Prefect flow-run and task-run ids of the writer
    # a decision's detail (pathways.runtime.core: Event.detail)
    CONDITIONS = "conditions"  # the conditions that held, with their ``when``
    RULES = "rules"  # rule -> where it was defined
    FACTS = "facts"  # fact -> the value used
    STAGE = "stage"
    FINANCING = "financing"
    SEVERITY = "severity"  # escalations, plan conflicts
    ACTION = "action"  # what an escalation or a plan conflict asks for (not the entry's action)
    NOTIFY = "notify"
    GOAL = "goal"
    TARGET = "target"
    DEADLINE = "deadline"
    # input.recorded, signoff.declined (orchestration/service.py)
    VALUES = "values"
    ON = "on"
    SIGNED_OFF_BY = "signed_off_by"
    # patient.created, facts.added, identity.stored (store/db.py); facts.deduplicated (migration 0003)
    SOURCE = "source"
    COUNTS = "counts"
    FIELDS = "fields"
    TOTAL = "total"
    # pathway.published (orchestration/runtimes.py): the version's files, rebuilt by its readers
    FILES = "files"
    # enrollment.migrated, enrollment.migration_reverted (orchestration/migrate.py)
    FROM = "from"  # version key
    TO = "to"  # version key
    PREVIEW = "preview"  # the migration preview's hash
    # config.changed (orchestration/stores.py)
    SETTINGS = "settings"
    CHANGED = "changed"
    # access.denied (orchestration, the CLI and the web)
    PERMISSION = "permission"  # the permission refused
    ATTEMPTED = "attempted"  # what was tried, in words
    VIA = "via"  # cli or web
    # patient_data.read (orchestration/auditing.py, orchestration/care.py)
    PAGE = "page"
    ENROLLMENTS = "enrollments"
    # document.rendered (store/audit.py, views/plan_document.py)
    DOCUMENT = "document"
    FORMAT = "format"
    LANG = "lang"
    SHA256 = "sha256"  # a hash of what was disclosed, never the text
    IDENTIFYING = "identifying"  # whether it named the patient
    # plan.* (store/plans.py), read by views/plan_indicators.py
    AT = "at"  # the plan's date (and the plan page's patient_data.read)
    PATHWAYS = "pathways"
    APPOINTMENTS = "appointments"
    STEPS = "steps"
    COMBINED_APPOINTMENTS = "combined_appointments"
    CONFLICT_RULES = "conflict_rules"
    RULE = "rule"  # plan.conflict, plan.resolved (pathways.runtime.plan writes the conflict's)


KEYS: frozenset[str] = frozenset(v for k, v in vars(Key).items() if k.isupper())
