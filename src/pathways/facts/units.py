"""Unit conversion with pint (the only importer of pint). Units are written in UCUM.

UCUM and pint spell some units differently: ``mm[Hg]`` is pint's ``mmHg``, ``m2`` is ``m**2``,
``{...}`` annotations carry no dimension, and eGFR's ``/{1.73_m2}`` is a normalisation that
laboratories also leave out (Synthea writes both ``mL/min/{1.73_m2}`` and ``mL/min``).
Conversions between mass and molar concentration use the analyte's molar mass from the fact
definition; method equations (HbA1c % -> mmol/mol) come from the fact definition too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pathways.definition.model import Fact


class UnitError(ValueError):
    pass


@dataclass(frozen=True)
class Converted:
    value: float
    how: str  # "same unit", "pint", "pint with molar mass", or the equation used


_UCUM_TO_PINT = [
    (re.compile(r"/\{1\.73_m2\}"), ""),  # eGFR normalisation annotation
    (re.compile(r"\{[^}]*\}"), ""),  # other annotations: {score}, {cells}
    (re.compile(r"mm\[Hg\]"), "mmHg"),
    (re.compile(r"\[lb_av\]"), "lb"),
    (re.compile(r"\[in_i\]"), "inch"),
    (re.compile(r"(?<![A-Za-z])m2(?![A-Za-z0-9])"), "m**2"),
    (re.compile(r"%"), "percent"),
    (re.compile(r"(?<![A-Za-z])a(?![A-Za-z])"), "year"),
    (re.compile(r"(?<![A-Za-z])l(?![A-Za-z])"), "L"),  # Dutch labs write mmol/l
    (re.compile(r"(?<![A-Za-z])u(?=[a-zA-Z])"), "µ"),  # umol -> µmol
]


@lru_cache(maxsize=1)
def _registry():
    import pint

    return pint.UnitRegistry()


@lru_cache(maxsize=512)
def _pint_unit(ucum: str):
    text = ucum.strip()
    for pattern, replacement in _UCUM_TO_PINT:
        text = pattern.sub(replacement, text)
    text = text.strip("/") or "dimensionless"
    if text in ("1", ""):
        text = "dimensionless"
    try:
        return _registry().Unit(text)
    except Exception as exc:  # pint raises several error types for unknown units
        raise UnitError(f"unknown unit '{ucum}'") from exc


def to_canonical(fact: Fact, value: float, unit: str | None) -> Converted:
    """``value`` in ``unit`` expressed in the fact's canonical unit; UnitError when impossible."""
    canonical = fact.unit
    if canonical is None:  # counts and other unit-less facts
        if unit not in (None, "", "1", "{count}", "{events}"):
            raise UnitError(f"'{unit}' given for a fact without a unit")
        return Converted(float(value), "same unit")
    if unit is None or unit == "":
        raise UnitError(f"no unit given (expected {canonical})")
    if unit == canonical:
        return Converted(float(value), "same unit")
    for conversion in fact.convert_from:
        if conversion.unit == unit:
            converted = conversion.slope * float(value) + conversion.intercept
            return Converted(converted, f"{conversion.slope:g} x {unit} {conversion.intercept:+g}")
    source, target = _pint_unit(unit), _pint_unit(canonical)
    quantity = _registry().Quantity(float(value), source)
    try:
        return Converted(float(quantity.to(target).magnitude), "pint")
    except Exception:
        pass
    if fact.molar_mass_g_mol is not None:
        molar_mass = _registry().Quantity(fact.molar_mass_g_mol, "g/mol")
        for candidate in (quantity / molar_mass, quantity * molar_mass):
            try:
                return Converted(float(candidate.to(target).magnitude), "pint with molar mass")
            except Exception:
                continue
    raise UnitError(f"cannot convert {unit} to {canonical}")
