"""The pathway definition language: frozen models, rule expressions, loader and checks.

Owns: reading YAML with positions, the schema (``model``), the expression parser (``expr``),
static checks (``typecheck``, ``checks``) and finding files (``loader``).
Must not touch: Prefect, durable-rules, the database, the network, or wall-clock time.
"""
