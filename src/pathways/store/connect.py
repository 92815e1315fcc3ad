"""Opening a store's database: its URL (PATHWAYS_DATABASE_URL; SQLite by default, PostgreSQL
through psycopg 3) as given and as it may be shown, the engine with SQLite's pragmas, the
schema brought to the current one (Alembic), a read-only engine for the audit commands, and the
retries with backoff that every contact with the database goes through (``retrying``); the
audit trail of a store opened read-only (``open_trail``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import OperationalError

from pathways.store.errors import StoreError, StoreUnavailable
from pathways.store.trail import Trail

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        folder = Path(url.removeprefix("sqlite:///").split("?", 1)[0]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"the store's folder {folder} (PATHWAYS_DATABASE_URL) cannot be created: {exc.strerror}; "
                             "set PATHWAYS_DATABASE_URL to a place you can write") from None
    engine = _create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(connection, _):  # wait for a lock instead of failing at once; keep foreign keys
            cursor = connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 5000")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.close()
    return engine


def migrate(engine: Engine) -> None:
    """Bring the database to the current schema, in one transaction. A database that cannot be
    reached (or stays locked) is retried with backoff, then a StoreUnavailable naming it."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def upgrade() -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    retrying(upgrade, what=f"the database {shown(engine.url)} (PATHWAYS_DATABASE_URL)")


def _create_engine(url: str, **options) -> Engine:
    """SQLAlchemy's engine; a URL it cannot use is a StoreError that says what to write."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return create_engine(url, **options)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise StoreError(
            f"PATHWAYS_DATABASE_URL: '{shown(url)}' is not a database URL this can use ({str(exc).splitlines()[0]}); "
            "write sqlite:///path/to/pathways.db or postgresql://user@host/database"
        ) from None


def shown(url: str | URL) -> str:
    """A database URL (text or SQLAlchemy's) as it may be shown: without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        text = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url).split("@", 1)[-1]
    return text.replace("postgresql+psycopg://", "postgresql://", 1)  # as it is set (normalise_url adds the driver)


def is_database_url(url: str) -> bool:
    """Whether SQLAlchemy can parse ``url`` (the settings check it before anything runs)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        return False
    return True


def without_password(url: str) -> str:
    """``url`` as SQLAlchemy renders it with its password hidden: what ``config.changed`` records
    (the text is compared with the last one recorded: keep it as it is)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def retrying(action: Callable[[], T], attempts: int = 5, first_wait: float = 0.2, what: str = "the database",
             sleep: Callable[[float], Any] | None = None) -> T:
    """Retry on a locked or unreachable database with exponential backoff, then a clear error.
    ``sleep`` waits between attempts (default ``time.sleep``; tests pass one that only records)."""
    sleep = sleep or time.sleep
    wait = first_wait
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except OperationalError as exc:
            if attempt == attempts:
                raise StoreUnavailable(f"{what} is unavailable after {attempts} attempts: {_reason(exc)}") from None
            sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")


def _reason(exc) -> str:
    """The database's own first line of an error, without SQLAlchemy's wrapping."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]


def open_readonly(url: str) -> Engine:
    """An engine that can only read an existing store (audit commands): nothing is created,
    migrated or written. A missing, empty, corrupted or foreign database is a clear StoreError."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DatabaseError

    url = normalise_url(url)
    where = shown(url)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        where = str(path)
        if not path.is_file():
            raise StoreError(f"no pathways store at {path} (PATHWAYS_DATABASE_URL); nothing was created")
        if path.stat().st_size == 0:
            raise StoreError(f"{path} is empty: not a pathways store")
        engine = create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
    else:
        engine = _create_engine(url, pool_pre_ping=True)

    def tables_of() -> set[str]:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())

    try:
        tables = retrying(tables_of, what=f"the store {where} (PATHWAYS_DATABASE_URL)")
    except DatabaseError as exc:
        raise StoreError(f"{where} is not a readable database ({_reason(exc)}): the file may be corrupted; nothing was written") from None
    if "audit_entry" not in tables:
        raise StoreError(f"{where} has no audit trail: not a pathways store, or one that predates the audit trail "
                         f"(a writing command such as `pathways advance --due` migrates it)")
    return engine


def open_trail(url: str) -> Trail:
    """The audit trail of the store at ``url``, read-only (``open_readonly``): what the audit
    commands read, without a connection of their own."""
    return Trail(open_readonly(url))
