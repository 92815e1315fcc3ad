"""The project's store (sqlmodel, Alembic): patients by pseudonym, append-only facts
(``factrows``), enrollments, step runs, decisions and goals (``models``; ``db``, the ``Store``, with
the rows it writes in ``rows`` and its errors in ``errors``), the append-only
hash-chained audit trail (``audit``; read through ``trail``), personal care plans (``plans``),
migration previews (``previews``), the care team's worklist (``worklist``) and web accounts
(``accounts``); bulk writes (``bulk``), opening the database (``connect``: engine, migrations,
retries, the read-only trail) and the schema's migrations (``migrations/``). SQLite by default, PostgreSQL
for scale. Must not touch: Prefect. Imported by orchestration, the CLI and the web
application (its ``Store`` type, errors and audit ``Record``; the web opens no session of its
own), and the audit vocabulary (``vocabulary``: every action name and shared payload key,
defined once). Nobody outside this package opens a connection or session on the database:
orchestration reads the trail through ``Store.trail``, the audit commands through
``connect.open_trail`` (read-only); import-linter contracts keep the database libraries out of the
CLI, the web, the views and orchestration, and tests/unit/test_store_edge.py fails on a new
``.connect(``/``Session(`` elsewhere.
"""
