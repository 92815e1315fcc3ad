"""The store's defaults that the settings need without loading the database libraries (the
commands that only read pathway files, `validate`, `show`, `diagram`, import no SQLAlchemy)."""

DEFAULT_URL = "sqlite:///.pathways/pathways.db"  # in the working directory: a first run needs no set-up
