"""The project's store (sqlmodel, Alembic): patients by pseudonym, append-only facts
(``factrows``), enrollments, step runs, decisions and goals (``models``, ``db``), the append-only
hash-chained audit trail (``audit``), personal care plans (``plans``), migration previews
(``previews``), the care team's worklist (``worklist``) and web accounts (``accounts``); bulk
writes (``bulk``) and the schema's migrations (``migrations/``). SQLite by default, PostgreSQL
for scale. Must not touch: Prefect. Imported by orchestration, the CLI and the web
application (its ``Store`` type, errors and audit ``Record``; the web opens no session of its
own), and the audit vocabulary (``vocabulary``: every action name, defined once). The CLI opens
no session either (an import-linter contract: it imports no database library); its audit
commands read through ``audit``'s queries on a read-only engine, and some orchestration queries
still open connections on the store's engine themselves (issue 26 item 5 moves them here).
"""
