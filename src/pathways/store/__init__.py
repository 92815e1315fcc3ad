"""The project's store (sqlmodel, Alembic): patients by pseudonym, append-only facts,
enrollments, step runs, decisions and goals, migration previews (previews.py). SQLite by default, PostgreSQL for scale.
Must not touch: Prefect. Imported by orchestration and the CLI only.
"""
