"""pathways: declarative personal care pathways (persoonlijke zorgtrajecten) for Dutch care networks.

Layers, lowest first; nothing imports upward (import-linter contracts in pyproject.toml, checked
by tests/unit/test_layers.py; docs/architecture.md follows one decision through them):
``errors | clock | access | interrupt`` <- ``definition`` <- ``facts`` <- ``rules`` <- ``runtime``
<- ``store`` <- ``views | orchestration`` <- ``cli | web``.
Prefect is imported in ``orchestration`` only (and by the CLI for ``pathways resume``),
durable-rules in ``rules.durable_adapter`` only, the database libraries from ``store`` upward.
"""

__version__ = "0.1.0"
