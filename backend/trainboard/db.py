"""Database engine and schema: SQLite pragmas, PostgreSQL, versioned migrations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable
from sqlmodel import Session, SQLModel

from trainboard.models import ModelAlias, Run, Sweep  # importing the models registers the tables

SQLITE_BUSY_TIMEOUT_MS = 30_000
READONLY_OPTION = "trainboard_readonly"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout, foreign keys and immediate writes."""
    # Enough connections for every thread of the server's pool (40) to hold one at once, so
    # a burst of requests waits for the database, never for a connection held by a waiter.
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=45)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=8,
        max_overflow=56,
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
    """The same engine and pool, for sessions that only read: one snapshot for the whole
    transaction (SQLite's deferred read in WAL, PostgreSQL's REPEATABLE READ), and no write
    lock on SQLite."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine.execution_options(**{READONLY_OPTION: True})


def placeholder(connection: Connection) -> str:
    """The driver's parameter marker: `?` for sqlite3, `%s` for psycopg."""
    return "?" if connection.dialect.paramstyle == "qmark" else "%s"


def driver_rows(session: Session, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows of `sql` (parameters marked `?`) in the session's transaction, straight from the
    driver's cursor: where many rows are read, a SQLAlchemy Row for each costs more than the
    read itself."""
    connection = session.connection()
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql.replace("?", placeholder(connection)), params)
        return cursor.fetchall()
    finally:
        cursor.close()


_WRITE_TURNS: dict[str, threading.RLock] = {}
_WRITE_TURNS_GUARD = threading.Lock()


def write_turn(engine: Engine) -> AbstractContextManager[object]:
    """For a session that may write to SQLite: this process's turn at the write lock.

    SQLite lets one writer in at a time, and a writer that finds the lock taken sleeps in
    growing steps (1, 2, 5, ... 100 ms) before it asks again, so a burst of concurrent writes
    spends most of its time asleep while the lock is free. Threads of one process queue here
    instead and go in the moment the writer before them is done; SQLite's busy timeout then
    only arbitrates between processes. Reentrant, so a nested session on the same thread
    behaves as it would without this; a turn not given within the busy timeout fails as
    SQLite would."""
    if engine.dialect.name != "sqlite" or engine.get_execution_options().get(READONLY_OPTION):
        return nullcontext()
    key = str(engine.url)
    with _WRITE_TURNS_GUARD:
        turn = _WRITE_TURNS.setdefault(key, threading.RLock())
    return _taken(turn)


@contextmanager
def _taken(turn: threading.RLock) -> Iterator[None]:
    if not turn.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
        raise TimeoutError(f"the database stayed locked for {SQLITE_BUSY_TIMEOUT_MS // 1000} s")
    try:
        yield
    finally:
        turn.release()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on error."""
    with write_turn(engine), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _v1_initial(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)


def _v2_run_ids_never_reused(connection: Connection) -> None:
    """SQLite gave a deleted run's id to the next run; AUTOINCREMENT never does. The table is
    rebuilt (SQLite cannot alter a key), with foreign keys off (see init_db) so dropping the
    old table does not cascade to its metrics. PostgreSQL's sequences never reuse an id."""
    if connection.dialect.name != "sqlite":
        return
    ddl = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'run'").scalar()
    if "AUTOINCREMENT" in str(ddl):
        return
    table = Run.__table__
    old = {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(run)")}
    columns = ", ".join(c.name for c in table.columns if c.name in old)  # later steps add more
    create = str(CreateTable(table).compile(dialect=connection.dialect)).strip()
    connection.exec_driver_sql(create.replace("CREATE TABLE run ", "CREATE TABLE run_new ", 1))
    connection.exec_driver_sql(f"INSERT INTO run_new ({columns}) SELECT {columns} FROM run")
    connection.exec_driver_sql("DROP TABLE run")
    connection.exec_driver_sql("ALTER TABLE run_new RENAME TO run")
    for index in table.indexes:
        index.create(connection)


def _v3_run_disk_bytes(connection: Connection) -> None:
    """The run folder's size kept on the run, so listing runs walks no folder. Runs from
    before have none (NULL): their size is measured when they are read."""
    columns = {c["name"] for c in inspect(connection).get_columns("run")}
    if "disk_bytes" not in columns:  # a schema made by step 1 or 2 of this version has it
        connection.exec_driver_sql("ALTER TABLE run ADD COLUMN disk_bytes BIGINT")


def _v4_run_options(connection: Connection) -> None:
    """The settings of a check run (an LR range test's range, a preflight's steps)."""
    columns = {c["name"] for c in inspect(connection).get_columns("run")}
    if "options" not in columns:
        connection.exec_driver_sql("ALTER TABLE run ADD COLUMN options JSON")


def _v5_sweeps(connection: Connection) -> None:
    """Sweeps (hyperparameter searches); their Optuna studies make their own tables."""
    Sweep.__table__.create(connection, checkfirst=True)


def _v6_model_aliases(connection: Connection) -> None:
    """Movable names for checkpoints ("production" → run 12's epoch-0009)."""
    ModelAlias.__table__.create(connection, checkfirst=True)


def _v7_devices(connection: Connection) -> None:
    """Runs on several devices: how many a run needs, and how many a worker offers."""
    for table in ("run", "worker"):
        columns = {c["name"] for c in inspect(connection).get_columns(table)}
        if "devices" not in columns:
            connection.exec_driver_sql(
                f"ALTER TABLE {table} ADD COLUMN devices INTEGER NOT NULL DEFAULT 1"
            )


# Each step takes the schema from version i to i+1; append, never edit.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1_initial,
    _v2_run_ids_never_reused,
    _v3_run_disk_bytes,
    _v4_run_options,
    _v5_sweeps,
    _v6_model_aliases,
    _v7_devices,
]
SCHEMA_VERSION = len(MIGRATIONS)


def init_db(engine: Engine) -> int:
    """Create or migrate the schema to SCHEMA_VERSION; safe to call from many processes."""
    with engine.connect() as connection, _foreign_keys_off(connection), connection.begin():
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


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite only: foreign keys off for the migrations (the pragma is ignored inside a
    transaction, so it goes straight to the driver before SQLAlchemy begins one)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")
