"""Engine and sessions.

Two kinds of session, so concurrent writers (two processes, or the jobs and the API in one) never trip over
SQLite's lock upgrade: `transaction()` starts a write transaction up front (`BEGIN IMMEDIATE` on SQLite, which
waits on the busy timeout instead of failing mid-way), `read()` a plain one. On PostgreSQL both are ordinary
READ COMMITTED transactions; compare-and-set updates make the claims safe there.

`rows(statement)` runs one bounded Core select (a page) outside any session, for hot read paths (the API's lists).
On a SQLite file it runs right on the event loop, on a plain read-only pysqlite connection, with the statement
compiled once and the column types' own result processors applied to the fetched tuples: no thread, no GIL
hand-off, none of SQLAlchemy's per-row result machinery (bench_api, a page of 50 live races: 2.4 ms of CPU
through the async engine, 1.0 ms through a reader thread, 0.4 ms this way). That connection never waits on
SQLite's lock (busy timeout 0): a read that finds the database busy, or anything else unusual, is run again by
SQLAlchemy in a reader thread that waits on the busy timeout and raises SQLAlchemy's errors.

`joining_writes(hook)` lets an adapter add a statement to the write transactions a service opens for it, without
the service knowing: the API's `Idempotency-Key` is marked used in the very transaction that creates the object.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Engine, Select, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


class DatabaseConfig(Protocol):
    """What `Database.from_settings` reads: `bot.settings.DatabaseSettings` (db/ never imports bot/)."""

    url: str
    echo: bool
    busy_timeout_ms: int
    pool_size: int
    max_overflow: int


_BEGIN_OPTION = "startline_sqlite_begin"
DEFAULT_POOL_SIZE = 20
DEFAULT_MAX_OVERFLOW = 10
# SQLite's `rows()` fallback workers (and their connections), for a read the event loop's connection could not
# do. One: more threads only contend for the GIL with the event loop (bench_api, quiet machine, when every read
# went through them: 4 threads 4.4 ms CPU a page and p99 109 ms, 2 threads 3.6 ms and 88 ms, 1 thread 2.0 ms).
READ_THREADS = 1
# Statements `rows()` keeps compiled (callers pass statements built once, see live_race_views.listing_query).
PREPARED_STATEMENTS = 64

WriteHook = Callable[[AsyncSession], Awaitable[None]]
# (the task that joined, its hook): tasks started meanwhile inherit the variable but are not that task.
_write_hooks: ContextVar[tuple[tuple[asyncio.Task | None, WriteHook], ...]] = ContextVar(
    "startline_write_hooks", default=()
)


@contextmanager
def joining_writes(hook: WriteHook) -> Iterator[None]:
    """Run `hook(session)` first in every write transaction this task opens inside the block: its statements
    commit or roll back with the transaction's own work. An exception from the hook rolls the transaction back."""
    token = _write_hooks.set((*_write_hooks.get(), (asyncio.current_task(), hook)))
    try:
        yield
    finally:
        _write_hooks.reset(token)


def _prepare_sqlite_path(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(
    url: str,
    *,
    echo: bool = False,
    busy_timeout_ms: int = 5000,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
) -> AsyncEngine:
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        _prepare_sqlite_path(url)
    options: dict = {"pool_pre_ping": not is_sqlite}
    in_memory = is_sqlite and (":memory:" in url or make_url(url).database in (None, ""))
    if not in_memory:
        # The pool closes any connection beyond `pool_size` when it is returned: with SQLAlchemy's default 5, a few
        # concurrent API requests made and dropped a connection (for aiosqlite also a thread) for nearly every
        # request. An in-memory SQLite database is one shared connection and has no pool to size.
        options.update(pool_size=pool_size, max_overflow=max_overflow)
    engine = create_async_engine(url, echo=echo, **options)
    if is_sqlite:

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            # Take over transaction control from the driver so BEGIN IMMEDIATE can be issued.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection) -> None:
            mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
            connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    """The engine plus the two session factories every service uses."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        busy_timeout_ms: int = 5000,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ) -> None:
        self.url = url
        self.engine = create_engine(
            url, echo=echo, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size, max_overflow=max_overflow
        )
        self._write_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        read_engine = self.engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
        self._read_sessions = async_sessionmaker(read_engine, expire_on_commit=False)
        self._busy_timeout_ms = busy_timeout_ms
        self._sync_reader: Engine | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        self._loop_reader: _LoopReader | None = None
        database = make_url(url).database if url.startswith("sqlite") else None
        in_memory = not database or database == ":memory:" or database.startswith("file:")
        self._sqlite_file = None if in_memory else database

    @classmethod
    def from_settings(cls, settings: DatabaseConfig) -> Database:
        return cls(
            settings.url,
            echo=settings.echo,
            busy_timeout_ms=settings.busy_timeout_ms,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        async with self._write_sessions() as session, session.begin():
            hooks = _write_hooks.get()
            if hooks:
                task = asyncio.current_task()
                for owner, hook in hooks:
                    if owner is task:
                        await hook(session)
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work; nothing is committed."""
        async with self._read_sessions() as session:
            yield session  # closing the session rolls the transaction back

    async def rows(self, statement: Select[Any], params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """All rows of one bounded Core select (a page: give it a LIMIT) as plain named tuples, read outside any
        session (a single statement sees one snapshot). Named tuples, not SQLAlchemy rows: a Row's attribute is a
        Python-level lookup (about 1 µs), and a page of 50 races reads some 2,000 of them."""
        if self._sqlite_file is None:
            async with self.engine.connect() as connection:
                return _plain(await connection.execute(statement, params))
        if self._loop_reader is None:
            self._loop_reader = _LoopReader(self._sqlite_file)
        try:
            return self._loop_reader.rows(statement, params)
        except sqlite3.Error:  # busy, or unusual: SQLAlchemy's own path, which waits and raises its own errors
            return await self._threaded_rows(statement, params)

    async def _threaded_rows(self, statement: Select[Any], params: dict[str, Any] | None) -> list[tuple[Any, ...]]:
        if self._sync_reader is None:
            self._sync_reader = _sqlite_reader(self._sqlite_file, self._busy_timeout_ms)
            self._read_threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="startline-sqlite-read")
        reader = self._sync_reader

        def read() -> list[tuple[Any, ...]]:
            with reader.connect() as connection:
                return _plain(connection.execute(statement, params))

        return await asyncio.get_running_loop().run_in_executor(self._read_threads, read)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._loop_reader is not None:
            self._loop_reader.close()
            self._loop_reader = None
        if self._sync_reader is not None:
            self._sync_reader.dispose()
            self._sync_reader = None
        if self._read_threads is not None:
            self._read_threads.shutdown(wait=False)
            self._read_threads = None


@functools.lru_cache(maxsize=256)
def _row_type(fields: tuple[str, ...]) -> type:
    return collections.namedtuple("PlainRow", fields, rename=True)  # type: ignore[misc]


def _plain(result: Any) -> list[tuple[Any, ...]]:
    make = _row_type(tuple(result.keys()))._make
    return [make(row) for row in result.all()]  # all(): one fetchall, not a fetchone per row


def _sqlite_reader(database: str, busy_timeout_ms: int) -> Engine:
    """A read-only pysqlite engine beside the async one, for `Database.rows` (its statements run in autocommit:
    pysqlite begins transactions only before writes, and `query_only` refuses those)."""
    engine = create_sync_engine(
        f"sqlite:///{database}", pool_size=READ_THREADS, max_overflow=0, json_deserializer=orjson.loads
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA query_only = ON")
        cursor.close()

    return engine


class _Prepared:
    """A select compiled once for pysqlite: its SQL, its parameters in order with their bind processors, and the
    result processors of its columns' types (what SQLAlchemy itself would apply; tests compare the two)."""

    __slots__ = ("bind_processors", "compiled", "expanding", "make", "params", "processors", "sql")

    def __init__(self, statement: Select[Any], dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.compiled = compiled
        self.sql = compiled.string
        binds = compiled.binds
        self.bind_processors = {
            name: processor
            for name, bind in binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
        }
        self.expanding = any(bind.expanding for bind in binds.values())
        self.params = [
            (name, self.bind_processors.get(name), binds[name].required, binds[name].value)
            for name in compiled.positiontup or ()
        ]
        columns = list(statement.selected_columns)
        self.processors = tuple(
            (index, processor)
            for index, column in enumerate(columns)
            if (processor := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        )
        # tuple.__new__ on the named tuple's class: its own `_make` is the same call wrapped in Python
        self.make = functools.partial(tuple.__new__, _row_type(tuple(column.key for column in columns)))

    def statement(self, params: dict[str, Any]) -> tuple[str, list[Any]]:
        """The SQL and its positional values for these parameters."""
        if self.expanding:  # an IN list: its placeholders depend on its length
            state = self.compiled.construct_expanded_state(params)
            processors = self.bind_processors | state.processors
            values = [
                processor(value) if (processor := processors.get(name)) is not None else value
                for name, value in zip(state.positiontup or (), state.positional_parameters, strict=True)
            ]
            return state.statement, values
        values = []
        for name, processor, required, default in self.params:
            if name in params:
                value = params[name]
            elif required:
                raise KeyError(f"no value for the bound parameter {name!r}")
            else:
                value = default
            values.append(processor(value) if processor is not None else value)
        return self.sql, values

    def rows(self, fetched: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The fetched tuples as named tuples, each processed column converted a column at a time (`map` and `zip`
        loop in C; a Python loop over 50 rows × 9 processed columns cost as much again)."""
        if not fetched or not self.processors:
            return list(map(self.make, fetched))
        columns: list[Any] = list(zip(*fetched, strict=True))
        for index, processor in self.processors:
            columns[index] = map(processor, columns[index])
        return list(map(self.make, zip(*columns, strict=True)))


class _LoopReader:
    """`Database.rows` on a SQLite file: a read-only pysqlite connection used on the event loop, in autocommit (each
    statement its own snapshot), that never waits on a lock, and the statements it has compiled."""

    def __init__(self, database: str) -> None:
        self.connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA busy_timeout = 0")
        self.connection.execute("PRAGMA query_only = ON")
        self.dialect = sqlite_dialect(json_deserializer=orjson.loads)  # as the reader thread's engine
        self.prepared: dict[int, tuple[Select[Any], _Prepared]] = {}

    def rows(self, statement: Select[Any], params: dict[str, Any] | None) -> list[tuple[Any, ...]]:
        entry = self.prepared.get(id(statement))
        if entry is None or entry[0] is not statement:
            if len(self.prepared) >= PREPARED_STATEMENTS:
                self.prepared.clear()
            entry = self.prepared[id(statement)] = (statement, _Prepared(statement, self.dialect))  # kept: id stays
        prepared = entry[1]
        sql, values = prepared.statement(params or {})
        return prepared.rows(self.connection.execute(sql, values).fetchall())

    def close(self) -> None:
        self.connection.close()


class DatabaseInUse(Exception):
    """Another process serves this SQLite database already."""


def hold_sqlite_for_this_process(url: str) -> object | None:
    """SQLite is for one process: take an exclusive lock on `<database>.lock` for as long as this process lives (the
    kernel lets it go when the process ends, a SIGKILL included). Raises DatabaseInUse when another process holds it.
    Returns the open lock file to keep (None for PostgreSQL, an in-memory database, or a system without flock)."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: not detected, as documented
        return None
    _prepare_sqlite_path(url)
    path = Path(database).expanduser()
    handle = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DatabaseInUse(
            f"error: another Startline process is already running on {path} (SQLite is for one process; "
            "run several on PostgreSQL, see docs/admin-guide.md)"
        ) from None
    return handle
