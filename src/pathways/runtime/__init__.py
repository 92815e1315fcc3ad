"""The runtime core: enrollments advancing through time (pure; no Prefect, no database).

Owns: enrollment state, scheduling of steps and reviews, events with idempotency keys, human
input validation, SMART goal progress, and mapping a state to another pathway version
(migrate.py: what a migration would change, compared under both versions). Must not touch: Prefect, the database, wall-clock time
(a Clock is passed in).
"""
