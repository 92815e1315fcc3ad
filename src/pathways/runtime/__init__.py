"""The runtime core: enrollments advancing through time (pure; no Prefect, no database).

Owns: enrollment state, advance and record (``core``), the state as stored (``stateformat``: a
format number, older formats upgraded), due dates of steps and reviews (``schedule``), events
with idempotency keys, human input validation, SMART goal progress, fast-forwarding on a
simulated clock (``simulate``), the personal care plan across a patient's pathways (``plan``)
with the cross-pathway interaction rules (``interactions``), and mapping a state to another
pathway version (``migrate``: what a migration would change, compared under both versions).
Must not touch: Prefect, the database, wall-clock time (a Clock is passed in).
"""
