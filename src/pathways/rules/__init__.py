"""Rules: every condition of a pathway version decided for a patient at a date.

Owns: what to evaluate (``plan``: conditions, inlined rules and parameters, the atoms they
read, the version key), the compiler to durable-rules JSON (``compile_durable``, pure), the only
importer of durable-rules (``durable_adapter``), the reference evaluator that explains every
decision and that the engine is tested against (``reference``), evaluation with explanations
(``evaluate``: one patient, or a batch in bulk), assurance cases (``cases``, ``pathways check``;
their file format ``casefile``, read without a rules engine) and the authors' formats described
from their models (``formats``: ``pathways schema``, docs/pathway-format.md).
Depends on ``definition`` and ``facts``. Must not touch: Prefect, the database, wall-clock time.
"""
