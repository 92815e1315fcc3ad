"""Durations as authors write them: ``3d``, ``12w``, ``6mo``, ``1y`` (also ``0d``).

Months and years stay calendar units (the runtime adds them with calendar arithmetic);
``approx_days`` is only for static checks such as "this window is shorter than that one".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from pathways.definition.textvalue import text_value_schema

UNITS = {"d": 1.0, "w": 7.0, "mo": 30.4375, "y": 365.25}
UNIT_WORDS = {"d": "day", "w": "week", "mo": "month", "y": "year"}
_PATTERN = re.compile(r"^(-?\d+)(d|w|mo|y)$")


@dataclass(frozen=True, order=True)
class Duration:
    amount: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> "Duration":
        match = _PATTERN.match(text.strip())
        if not match:
            raise ValueError(f"'{text}' is not a duration")
        return cls(int(match.group(1)), match.group(2))

    @property
    def approx_days(self) -> float:
        return self.amount * UNITS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def describe(self) -> str:
        word = UNIT_WORDS[self.unit]
        return f"{self.amount} {word}{'' if abs(self.amount) == 1 else 's'}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def from_str(value: str) -> Duration:
            try:
                return cls.parse(value)
            except ValueError as exc:
                raise PydanticCustomError("duration", str(exc)) from None

        return text_value_schema(cls, from_str, "duration")
