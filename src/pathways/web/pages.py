"""Rendering: one Jinja2 environment with autoescaping on for every template (``*.html``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from pathways.web import security

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
TEMPLATES = Jinja2Templates(env=_ENV)


def render(request: Request, template: str, status: int = 200, headers: dict | None = None, **context):
    actor = getattr(request.state, "actor", None)
    return TEMPLATES.TemplateResponse(request, template, {"actor": actor, "csrf": security.csrf_token(request), **context},
                                      status_code=status, headers=headers)
