"""The pathway definition language: frozen models, rule expressions, loader and checks.

Owns: reading YAML with positions (``yamlsource``), the schema (``model``), the expression
parser (``expr``, ``durations``), static checks (``typecheck``; ``checks``, of the steps, over ``definitions``, of what a pathway
or library defines, collected by ``reporting``; ``bounds``: values
left between two branches, ``goals``: goals no step measures again), document templates and
their checks (``documents``), cross-pathway interaction rules (``interactions``), finding and
loading files by name or path (``loader``), writing a definition back (``dump``), what changed
between two versions (``diff``), values written as text in YAML (``textvalue``), values as
clinicians write them in a letter (``wording``), the skeleton ``pathways new`` writes
(``skeleton``) and where pathways and templates are looked for (``places``: given, never read from
the environment). The layers inside are an import-linter
contract (pyproject.toml).
Must not touch: Prefect, durable-rules, the database, the network, or wall-clock time.
"""
