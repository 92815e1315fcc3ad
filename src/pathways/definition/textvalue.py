"""Pydantic support for values written as text in YAML and parsed into objects (durations,
expressions): accepted as the object or as text, dumped back as the text."""

from __future__ import annotations

from typing import Any, Callable

from pydantic_core import PydanticCustomError, core_schema


def text_value_schema(cls: type, parse: Callable[[str], Any], kind: str) -> core_schema.CoreSchema:
    """``parse`` raises PydanticCustomError for bad text; non-text input is a '<kind>_type' error."""

    def validate(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, str):
            raise PydanticCustomError(f"{kind}_type", "write this as text")
        return parse(value)

    return core_schema.no_info_plain_validator_function(
        validate,
        json_schema_input_schema=core_schema.str_schema(),
        serialization=core_schema.to_string_ser_schema(),
    )
