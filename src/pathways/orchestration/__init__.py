"""What the commands, the web application and the Prefect flows do, above the store.

``service`` (enrol, advance, record, publish, settings), ``versions`` (an enrollment runs the
version it was published as), ``newfacts``, ``care`` (the care team's worklist and forms),
``careplan``, ``migrate`` (moving enrollments to a newer version) and ``accounts`` work without
Prefect. ``flows`` (the only module holding flows), ``advancing`` (the commands' runs of them:
server first, side by side, stopped cleanly), ``followup`` (next reviews scheduled, plans made
again), ``turns`` (threads and one creation at a time; no Prefect), ``prefect_edge`` (the Prefect settings
pathways changes and its work-arounds, applied by the entry points with ``configure()``; the
private Prefect APIs relied on, listed once), ``deploy`` (deployments, ``pathways serve``),
``warm`` (one Prefect kept warm for the web application, advancing an enrollment after a
recorded step) and ``workers`` (batch worker processes, which do
not import Prefect) run them through Prefect. Prefect sees pseudonymous ids only; clinical
values stay in the store.
"""
