"""Patient facts: input models, unit conversion (pint), resolution onto a pathway's facts and
values at an evaluation date. Depends on ``definition``; knows nothing of rules engines,
Prefect or the database.
"""
