"""Database engine and schema: SQLite pragmas, PostgreSQL, versioned migrations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel

from trainboard import models  # noqa: F401  (registers the tables)

SQLITE_BUSY_TIMEOUT_MS = 30_000
READONLY_OPTION = "trainboard_readonly"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout, foreign keys and immediate writes."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not pysqlite, emit BEGIN (pysqlite's implicit BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes fails at once with "database is locked" when another writer got in between,
        # while IMMEDIATE waits its turn under busy_timeout. Transactions here are short.
        # Read-only engines (see `reader`) begin deferred: WAL readers never wait for writers.
        readonly = connection.get_execution_options().get(READONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def reader(engine: Engine) -> Engine:
    """The same engine and pool, for sessions that only read (no write lock on SQLite)."""
    return engine.execution_options(**{READONLY_OPTION: True})


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _v1_initial(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)


# Each step takes the schema from version i to i+1; append, never edit.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial]
SCHEMA_VERSION = len(MIGRATIONS)


def init_db(engine: Engine) -> int:
    """Create or migrate the schema to SCHEMA_VERSION; safe to call from many processes."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Serialize concurrent first starts (server and workers at once).
            connection.execute(text("SELECT pg_advisory_xact_lock(74210931)"))
        connection.execute(
            text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        )
        version = connection.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
        current = int(version or 0)
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database has schema version {current}, newer than this trainboard "
                f"({SCHEMA_VERSION}); upgrade trainboard"
            )
        for step in MIGRATIONS[current:]:
            step(connection)
        if current < SCHEMA_VERSION:
            connection.execute(text("DELETE FROM schema_version"))
            connection.execute(
                text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": SCHEMA_VERSION}
            )
    return SCHEMA_VERSION
