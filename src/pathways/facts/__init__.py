"""Patient facts: input models (``model``), reading patient files (``load``: facts JSON and FHIR
R4 through ``fhir``; ``jsonread`` with size and depth limits; ``problems``: every problem of a
file in one round; ``cohort``: a folder of them, one patient at a time), unit conversion with
pint (``units``, its only importer), resolution onto a pathway's facts (``resolve``) and values
at an evaluation date (``derive``). Depends on ``definition``; knows nothing of rules engines,
Prefect or the database.
"""
