"""When steps fall due: offsets, review moments (e.g. 4, 12, 24 weeks, then every 13 weeks),
calendar months and years. Pure."""

from __future__ import annotations

import calendar
import datetime as dt

from pathways.definition.durations import Duration
from pathways.definition.model import Timing


def add(day: dt.date, duration: Duration) -> dt.date:
    """Calendar arithmetic: 3mo after 31 January is 30 April (the month's last day)."""
    if duration.unit == "d":
        return day + dt.timedelta(days=duration.amount)
    if duration.unit == "w":
        return day + dt.timedelta(weeks=duration.amount)
    months = duration.amount * (12 if duration.unit == "y" else 1)
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def occurrence_date(timing: Timing | None, anchor: dt.date, occurrence: int) -> dt.date | None:
    """The date of the n-th occurrence (0-based) of a step anchored at ``anchor``; None when
    there is no such occurrence (a one-off step after its first, or past ``until``)."""
    if timing is None:
        return anchor if occurrence == 0 else None
    if timing.at:
        if occurrence < len(timing.at):
            day = add(anchor, timing.at[occurrence])
        elif timing.every is not None:
            day = add(anchor, timing.at[-1])
            for _ in range(occurrence - len(timing.at) + 1):
                day = add(day, timing.every)
        else:
            return None
    elif timing.every is not None:
        day = add(anchor, timing.offset)
        for _ in range(occurrence):
            day = add(day, timing.every)
    else:
        day = add(anchor, timing.offset) if occurrence == 0 else None
    if day is not None and timing.until is not None and day > add(anchor, timing.until):
        return None
    return day
