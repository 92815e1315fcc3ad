"""Write a definition back to YAML: what was loaded, without defaults, in the file's key order."""

from __future__ import annotations

from typing import Union

import yaml

from pathways.definition.model import Library, PathwaySpec


def to_data(model: Union[PathwaySpec, Library]) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def dump_yaml(model: Union[PathwaySpec, Library]) -> str:
    return yaml.safe_dump(to_data(model), sort_keys=False, allow_unicode=True, width=100)
