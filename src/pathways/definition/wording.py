"""Values as clinicians write them in a letter: numbers with the language's decimal mark, UCUM
units shown humanly (``mL/min/{1.73_m2}`` -> ``ml/min/1,73m²``), coded values in the letter's
language (``male`` -> ``man``), short clinical names of facts and thresholds. Pure.

The canonical UCUM units stay what the engine computes with and what `audit show` prints;
this is only how a document or a timeline shows them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

# units whose human form is not a mechanical rewrite of the UCUM code
UNITS = {
    "nl": {"mm[Hg]": "mmHg", "a": "jaar", "d": "dagen", "wk": "weken", "mo": "maanden", "1": "", "{score}": "", "%": "%",
           "[in_i]": "inch", "/min": "/min"},
    "en": {"mm[Hg]": "mmHg", "a": "years", "d": "days", "wk": "weeks", "mo": "months", "1": "", "{score}": "", "%": "%",
           "[in_i]": "inch", "/min": "/min"},
}
SUPERSCRIPTS = {"2": "²", "3": "³"}
YES_NO = {"nl": ("ja", "nee"), "en": ("yes", "no")}
# the administrative codes every pathway shares (FHIR AdministrativeGender), for facts that do not
# declare their own value_titles
COMMON_CODES = {
    "nl": {"male": "man", "female": "vrouw", "other": "anders", "unknown": "onbekend"},
    "en": {"male": "male", "female": "female", "other": "other", "unknown": "unknown"},
}


def text_in(value: Any, lang: str) -> str:
    """A bilingual text in ``lang`` (Dutch when there is no English)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return getattr(value, lang, None) or value.nl


def unit_text(unit: str | None, lang: str) -> str:
    """``mL/min/{1.73_m2}`` -> ``ml/min/1,73m²`` (nl) or ``ml/min/1.73m²`` (en); ``kg/m2`` -> ``kg/m²``."""
    if unit is None:
        return ""
    known = UNITS[lang].get(unit)
    if known is not None:
        return known
    shown = re.sub(r"\{([^{}]*)\}", lambda m: m[1].replace("_", ""), unit)  # UCUM annotations: {1.73_m2} -> 1.73m2
    shown = re.sub(r"\[([^\]]*)\]", r"\1", shown)  # [Hg] -> Hg
    shown = re.sub(r"(?<=[A-Za-z])([23])(?![0-9])", lambda m: SUPERSCRIPTS[m[1]], shown)  # m2 -> m²
    shown = re.sub(r"(?<![A-Za-z])L(?![A-Za-z])", "l" if lang == "nl" else "L", shown)  # mL, mmol/L: Dutch labs write l
    shown = shown.replace("mL", "ml").replace("umol", "µmol")
    if lang == "nl":
        shown = re.sub(r"(?<=\d)\.(?=\d)", ",", shown)
    return shown


def number_text(value: Any, lang: str) -> str:
    """26 -> "26"; 5.95 -> "5,95" (nl) or "5.95" (en): at most two decimals, no trailing zeros."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int):
        return str(value)
    shown = f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.0f}"
    return shown.replace(".", ",") if lang == "nl" else shown


def quantity_text(value: Any, unit: str | None, lang: str) -> str:
    """"26 ml/min/1,73m²", "140 mmHg", "82 jaar", "12%"."""
    shown, unit_shown = number_text(value, lang), unit_text(unit, lang)
    if not unit_shown:
        return shown
    return f"{shown}{unit_shown}" if unit_shown[0] in "%/" else f"{shown} {unit_shown}"


def code_text(fact: Any, value: Any, lang: str) -> str:
    """A coded value in the letter's language: the fact's value_titles, else the shared administrative codes."""
    titles = getattr(fact, "value_titles", None) or {}
    if value in titles:
        return text_in(titles[value], lang)
    return COMMON_CODES[lang].get(str(value), str(value))


def fact_value_text(fact: Any, value: Any, lang: str, unit: str | None = None) -> str:
    """Any fact's value as a letter writes it."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return YES_NO[lang][0 if value else 1]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return quantity_text(value, unit if unit is not None else getattr(fact, "unit", None), lang)
    if getattr(fact, "type", None) == "code" or str(value) in COMMON_CODES["en"]:
        return code_text(fact, value, lang)
    return str(value)


def fact_label(name: str, fact: Any, lang: str) -> str:
    """The short clinical name: the fact's label, else its title without a parenthetical remark
    ("Geslacht (administratief)" -> "Geslacht"), else its name."""
    label = getattr(fact, "label", None)
    if label is not None:
        return text_in(label, lang)
    title = getattr(fact, "title", None)
    if title:
        return re.sub(r"\s*\([^)]*\)\s*$", "", title) or title
    return name.replace("_", " ")


def capitalized(text: str) -> str:
    """A capital at the start, unless the name is written so ("eGFR", "pH")."""
    return text[0].upper() + text[1:] if text[:2].islower() else text


def threshold_text(name: str, parameter: Any, value_shown: str, lang: str, parameters: dict[str, Any] | None = None) -> str:
    """"de verwijsgrens van 30 voor 65-plussers" (the parameter's label), else "de grens van 30".
    A label may name other parameters, ``{ckd_age_boundary_years}-plussers``: their values as
    decided, so a care network's other age limit reads right."""
    label = getattr(parameter, "label", None)
    if label is None:
        return f"de grens van {value_shown}" if lang == "nl" else f"the threshold of {value_shown}"
    phrase = text_in(label, lang)
    for other, value in (parameters or {}).items():
        if "{" + other + "}" in phrase:
            phrase = phrase.replace("{" + other + "}", number_text(value, lang))
    if "{value}" in phrase:
        return phrase.replace("{value}", value_shown)
    return f"{phrase} ({value_shown})"
