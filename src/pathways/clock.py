"""The only reader of wall-clock time. Everything else takes a Clock as an argument."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def today(self) -> dt.date: ...

    def now(self) -> dt.datetime: ...


class SystemClock:
    def today(self) -> dt.date:
        return dt.date.today()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


@dataclass
class FixedClock:
    """A clock that only moves when told to: for tests and simulations."""

    current: dt.datetime

    def today(self) -> dt.date:
        return self.current.date()

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, delta: dt.timedelta) -> None:
        self.current = self.current + delta

    @classmethod
    def on(cls, day: dt.date) -> "FixedClock":
        """A clock standing at noon UTC on ``day``."""
        return cls(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc))


def clock_from_environment(environ: dict[str, str]) -> Clock:
    """The system clock, or a fixed one when PATHWAYS_TODAY=YYYY-MM-DD is set (tests, demos)."""
    fixed = environ.get("PATHWAYS_TODAY")
    if fixed:
        return FixedClock.on(dt.date.fromisoformat(fixed))
    return SystemClock()
