"""The store's errors, one class per thing that can go wrong, each caught by the commands and
the web application to say what to do: all are ``StoreError``s, and their messages name the
store and the fix (never patient data). Re-exported by ``store.db``, where most callers import
them with the ``Store``."""

from __future__ import annotations

class StoreError(RuntimeError):
    pass


class StoreUnavailable(StoreError):
    pass


class StaleState(StoreError):
    """The enrollment was advanced by someone else since it was read."""


class UnknownEnrollment(StoreError):
    pass


class UnreadableState(StoreError):
    """A stored enrollment state this code cannot read (e.g. written by a newer pathways)."""


class VersionTaken(StoreError):
    """Publishing a version number that is published already with other content."""

