"""The care team's worklist: step runs that are due (on or before today: overdue), across all
enrollments, in due-date order, a page at a time. One indexed query; the caller says which steps
count (per pathway version) when it filters by discipline, which only the pathway knows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from pathways.store.connect import retrying
from pathways.store.db import Store
from pathways.store.models import Enrollment, StepRun


@dataclass(frozen=True)
class DueStep:
    enrollment: str
    patient: str  # pseudonymous id
    pathway: str
    version_key: str
    step: str
    due_on: dt.date


@dataclass(frozen=True)
class Page:
    rows: list[DueStep]
    total: int  # rows that match the filters, on all pages


def due_steps(store: Store, *, pathway: str | None = None, steps: dict[str, set[str]] | None = None,
              since: dt.date | None = None, until: dt.date | None = None, offset: int = 0, limit: int = 25) -> Page:
    """Due step runs, sorted by due date (then enrollment and step). ``steps``: only these steps
    of each pathway version key (a version missing from it has none); ``since``/``until``: due
    dates within those days (inclusive)."""
    conditions = [StepRun.status == "due"]
    if pathway:
        conditions.append(Enrollment.pathway == pathway)
    if since is not None:
        conditions.append(StepRun.due_on >= since)
    if until is not None:
        conditions.append(StepRun.due_on <= until)
    if steps is not None:
        chosen = [and_(Enrollment.version_key == key, StepRun.step.in_(sorted(names))) for key, names in sorted(steps.items()) if names]
        if not chosen:
            return Page([], 0)
        conditions.append(or_(*chosen))
    joined = select(StepRun.enrollment_id, Enrollment.patient_id, Enrollment.pathway, Enrollment.version_key, StepRun.step, StepRun.due_on) \
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id).where(*conditions)

    def read() -> Page:
        with Session(store.engine) as session:
            total = session.execute(select(func.count()).select_from(joined.subquery())).scalar_one()
            rows = session.execute(joined.order_by(StepRun.due_on, StepRun.enrollment_id, StepRun.step).offset(offset).limit(limit)).all()
        return Page([DueStep(*row) for row in rows], total)
    return retrying(read, what=store.where)


def version_keys(store: Store, pathway: str | None = None) -> list[str]:
    """The pathway versions enrollments run (all, or one pathway's)."""
    def read() -> list[str]:
        statement = select(Enrollment.version_key).distinct()
        if pathway:
            statement = statement.where(Enrollment.pathway == pathway)
        with Session(store.engine) as session:
            return sorted(session.execute(statement).scalars())
    return retrying(read, what=store.where)
