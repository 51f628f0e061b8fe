"""PostgreSQL: LangGraph's own Postgres saver, with tierflow's runs table beside it.

`open_postgres(url)` gives a `PostgresSaver` on the process's pool that releases it when
closed (a context manager, like `SqliteStore`). It is sync and async: LangGraph's
`PostgresSaver` has no async methods (`ainvoke` on it raises `NotImplementedError`), so
they are added here the way `SqliteStore` has them — each runs the sync one in a worker
thread (`threaded.py`), and an event loop never waits on psycopg. `aopen_postgres(url)`
gives LangGraph's `AsyncPostgresSaver` on a connection of its own instead.
LangGraph's saver stores one blob per channel version; it has no copy or keep-last
pruning, so forks and retention are done here in SQL on its tables (`checkpoints`,
`checkpoint_blobs`, `checkpoint_writes`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any, Self

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from tierflow.errors import CheckpointError
from tierflow.store.database import PostgresDatabase
from tierflow.store.schema import RUNS_COLUMNS, RUNS_COLUMNS_V2
from tierflow.store.tables import RUNS_COLUMNS_V3, ddl
from tierflow.store.targets import redact
from tierflow.store.threaded import AsyncInWorkerThread
from tierflow.testing.faults import crash_point

SQL_TYPES = {str: "TEXT", int: "BIGINT", float: "DOUBLE PRECISION"}
SCHEMA_VERSION = 3


def connect(url: str) -> psycopg.Connection[DictRow]:
    try:
        return psycopg.Connection.connect(url, **CONNECTION_KWARGS)
    except psycopg.Error as error:
        raise CheckpointError(f"cannot connect to {redact(url)}: {_reason(error)}") from error


def _reason(error: psycopg.Error) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
}
POOL_MAX = 8
SCHEMA_LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('tierflow_schema')) AS got"
SCHEMA_UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext('tierflow_schema'))"


def open_pool(url: str) -> ConnectionPool[psycopg.Connection[DictRow]]:
    """The process's pool for `url`, its tables set up (`database.acquire` calls this)."""
    set_up(url)
    pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
        url, min_size=1, max_size=POOL_MAX, kwargs=CONNECTION_KWARGS, open=True
    )
    return pool


def set_up(url: str) -> None:
    """Create or migrate LangGraph's checkpoint tables and tierflow's in the database at
    `url` (blocking: an event loop calls it through `asyncio.to_thread`)."""
    with connect(url) as conn:  # fail fast, with one clear line, on a bad URL
        try:
            # LangGraph's `setup()` is not safe for processes creating one database's
            # tables at once (CREATE TABLE IF NOT EXISTS races on the type's name):
            # one session at a time, the same lock the tierflow migrations take.
            _lock_schema(conn)
            try:
                PostgresSaver(conn).setup()
                setup_tierflow_tables(conn)
            finally:
                conn.execute(SCHEMA_UNLOCK_SQL)
        except psycopg.Error as error:
            raise CheckpointError(
                f"{redact(url)}: cannot set up checkpoint tables ({error})"
            ) from error


def _lock_schema(conn: psycopg.Connection[DictRow], timeout_s: float = 60.0) -> None:
    """Take the schema lock for this session, trying without waiting inside the server:
    LangGraph's migrations run `CREATE INDEX CONCURRENTLY`, which waits for every open
    transaction — one blocked on a lock would deadlock with it."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute(SCHEMA_LOCK_SQL).fetchone()
        if row is not None and row["got"]:
            return
        if time.monotonic() > deadline:
            raise CheckpointError("timed out waiting for another process to set up the tables")
        time.sleep(0.05)


def setup_tierflow_tables(conn: psycopg.Connection[DictRow]) -> None:
    """The runs table, the governance tables, leases and approvals (and the schema
    version) in the checkpoint database."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(
            sql.Identifier(name),
            sql.SQL(SQL_TYPES[kind] + (" PRIMARY KEY" if name == "thread" else "")),
        )
        for name, kind in RUNS_COLUMNS.items()
        if name not in (*RUNS_COLUMNS_V2, *RUNS_COLUMNS_V3)
    )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('tierflow_schema'))")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tierflow_schema (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT max(version) AS v FROM tierflow_schema").fetchone()
        found = int(row["v"] or 0) if row else 0
        if found > SCHEMA_VERSION:
            raise CheckpointError(
                f"the database has tierflow schema v{found}, newer than this tierflow's "
                f"v{SCHEMA_VERSION}: upgrade tierflow to open it"
            )
        if found < 1:
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS runs ({})").format(columns))
            conn.execute("INSERT INTO tierflow_schema (version) VALUES (1)")
        for version, added in ((2, RUNS_COLUMNS_V2), (3, RUNS_COLUMNS_V3)):
            if found >= version:
                continue
            for column in added:
                conn.execute(
                    sql.SQL("ALTER TABLE runs ADD COLUMN IF NOT EXISTS {} TEXT").format(
                        sql.Identifier(column)
                    )
                )
            if version == 3:
                for statement in ddl("postgres"):
                    conn.execute(statement.encode())
            conn.execute("INSERT INTO tierflow_schema (version) VALUES (%s)", (version,))


class PostgresStore(AsyncInWorkerThread, PostgresSaver):
    """LangGraph's `PostgresSaver` on the process's pool (`database.acquire`), with async
    methods that run its sync ones in a worker thread: use it as a context manager;
    closing it releases the pool."""

    url: str
    db: PostgresDatabase

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        # LangGraph's saver writes in one transaction we can't reach into: the crash
        # point sits just before it (a checkpoint lost whole, never half-written).
        crash_point("checkpoint.write")
        return super().put(config, checkpoint, metadata, new_versions)

    def close(self) -> None:
        self.db.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_postgres(url: str) -> PostgresStore:
    from tierflow.store.database import acquire

    db = acquire(url)
    assert isinstance(db, PostgresDatabase)
    store = PostgresStore(db.pool)
    store.url = url
    store.db = db
    return store


@asynccontextmanager
async def aopen_postgres(url: str) -> AsyncIterator[AsyncPostgresSaver]:
    """LangGraph's `AsyncPostgresSaver` on its own connection, the tables set up first
    (in a worker thread: setting up is sync, and may wait for another process's lock)."""
    await asyncio.to_thread(set_up, url)
    async with AsyncPostgresSaver.from_conn_string(url) as saver:
        yield saver


@contextmanager
def cursor(store: PostgresStore) -> Iterator[psycopg.Cursor[DictRow]]:
    """A cursor in one transaction; psycopg errors become `CheckpointError`."""
    try:
        with store.db.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur
    except psycopg.Error as error:
        raise CheckpointError(f"{redact(store.url)}: {error}") from error


def thread_exists(store: PostgresStore, thread: str) -> bool:
    with cursor(store) as cur:
        cur.execute("SELECT 1 FROM checkpoints WHERE thread_id = %s LIMIT 1", (thread,))
        return cur.fetchone() is not None


def history_rows(store: PostgresStore, thread: str) -> list[dict[str, Any]]:
    """The root namespace's checkpoints, oldest first, with what the history needs."""
    with cursor(store) as cur:
        cur.execute(
            "SELECT checkpoint_id, parent_checkpoint_id AS parent, checkpoint->>'ts' AS ts, "
            "metadata->>'step' AS step, metadata->>'source' AS source, "
            "octet_length(checkpoint::text) + octet_length(metadata::text) AS size, "
            "checkpoint->'channel_versions' AS versions FROM checkpoints "
            "WHERE thread_id = %s AND checkpoint_ns = '' ORDER BY checkpoint_id",
            (thread,),
        )
        rows = cur.fetchall()
        cur.execute(
            "SELECT channel, version, coalesce(octet_length(blob), 0) AS size "
            "FROM checkpoint_blobs WHERE thread_id = %s AND checkpoint_ns = ''",
            (thread,),
        )
        blob_sizes = {(r["channel"], r["version"]): int(r["size"]) for r in cur.fetchall()}
        cur.execute(
            "SELECT DISTINCT checkpoint_id, task_path FROM checkpoint_writes "
            "WHERE thread_id = %s AND checkpoint_ns = ''",
            (thread,),
        )
        paths: dict[str, list[str]] = {}
        for r in cur.fetchall():
            paths.setdefault(r["checkpoint_id"], []).append(r["task_path"])
    versions_of = {r["checkpoint_id"]: r["versions"] or {} for r in rows}
    found = []
    for r in rows:
        before = versions_of.get(r["parent"], {})
        new = [(c, v) for c, v in r["versions"].items() if before.get(c) != v]
        found.append(
            {
                "checkpoint_id": r["checkpoint_id"],
                "step": int(r["step"]) if r["step"] is not None else None,
                "source": r["source"] or "",
                "ts": r["ts"] or "",
                "size": int(r["size"]) + sum(blob_sizes.get(key, 0) for key in new),
                "task_paths": paths.get(r["parent"], []),
            }
        )
    return found


def fork(store: PostgresStore, thread: str, checkpoint_id: str, new_thread: str) -> int:
    """Copy `checkpoint_id` of `thread` and its ancestors to `new_thread`, with the
    ancestors' writes and every blob they refer to. Returns checkpoints copied."""
    chain = (
        "WITH RECURSIVE chain AS ("
        "SELECT checkpoint_id, parent_checkpoint_id FROM checkpoints "
        "WHERE thread_id = %(thread)s AND checkpoint_ns = '' AND checkpoint_id = %(at)s "
        "UNION SELECT c.checkpoint_id, c.parent_checkpoint_id FROM checkpoints c "
        "JOIN chain ON c.checkpoint_id = chain.parent_checkpoint_id "
        "WHERE c.thread_id = %(thread)s AND c.checkpoint_ns = '') "
    )
    names = {"thread": thread, "at": checkpoint_id, "new": new_thread}
    with cursor(store) as cur:
        cur.execute(
            chain + "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) "
            "SELECT %(new)s, '', c.checkpoint_id, c.parent_checkpoint_id, c.type, c.checkpoint, "
            "c.metadata FROM checkpoints c JOIN chain USING (checkpoint_id) "
            "WHERE c.thread_id = %(thread)s AND c.checkpoint_ns = ''",
            names,
        )
        copied = cur.rowcount
        # The fork point's own pending writes stay behind: its tasks run again.
        cur.execute(
            chain + "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, "
            "task_id, task_path, idx, channel, type, blob) "
            "SELECT %(new)s, '', w.checkpoint_id, w.task_id, w.task_path, w.idx, w.channel, "
            "w.type, w.blob FROM checkpoint_writes w JOIN chain USING (checkpoint_id) "
            "WHERE w.thread_id = %(thread)s AND w.checkpoint_ns = '' "
            "AND w.checkpoint_id <> %(at)s",
            names,
        )
        cur.execute(
            "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) "
            "SELECT DISTINCT %(new)s, '', b.channel, b.version, b.type, b.blob "
            "FROM checkpoints c "
            "CROSS JOIN LATERAL jsonb_each_text(c.checkpoint->'channel_versions') v "
            "JOIN checkpoint_blobs b ON b.thread_id = %(thread)s AND b.checkpoint_ns = '' "
            "AND b.channel = v.key AND b.version = v.value "
            "WHERE c.thread_id = %(new)s AND c.checkpoint_ns = '' "
            "ON CONFLICT DO NOTHING",
            names,
        )
    return copied


def keep(
    store: PostgresStore,
    thread_ids: Sequence[str] | None,
    keep_last: int,
    older_than: float | None,
) -> int:
    """Delete all but each namespace's `keep_last` newest checkpoints, sparing those
    not older than `older_than` (Unix time); then writes and blobs nothing kept uses."""
    with cursor(store) as cur:
        cur.execute(
            "SELECT thread_id, checkpoint_ns, checkpoint_id FROM ("
            "SELECT thread_id, checkpoint_ns, checkpoint_id, checkpoint->>'ts' AS ts, "
            "row_number() OVER (PARTITION BY thread_id, checkpoint_ns "
            "ORDER BY checkpoint_id DESC) AS newest FROM checkpoints "
            "WHERE %(all)s OR thread_id = ANY(%(threads)s)) ranked "
            "WHERE newest > %(keep)s AND (%(cutoff)s::float8 IS NULL "
            "OR ts IS NULL OR extract(epoch FROM ts::timestamptz) < %(cutoff)s::float8)",
            {
                "all": thread_ids is None,
                "threads": list(thread_ids or []),
                "keep": max(keep_last, 1),
                "cutoff": older_than,
            },
        )
        doomed: dict[tuple[str, str], list[str]] = {}
        for r in cur.fetchall():
            doomed.setdefault((r["thread_id"], r["checkpoint_ns"]), []).append(r["checkpoint_id"])
        for (thread, namespace), ids in doomed.items():
            lane = {"thread": thread, "ns": namespace, "ids": ids}
            cur.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %(thread)s "
                "AND checkpoint_ns = %(ns)s AND checkpoint_id = ANY(%(ids)s)",
                lane,
            )
            cur.execute(
                "DELETE FROM checkpoints WHERE thread_id = %(thread)s "
                "AND checkpoint_ns = %(ns)s AND checkpoint_id = ANY(%(ids)s)",
                lane,
            )
            cur.execute(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = %(thread)s "
                "AND checkpoint_ns = %(ns)s AND parent_checkpoint_id = ANY(%(ids)s)",
                lane,
            )
            cur.execute(
                "DELETE FROM checkpoint_blobs b WHERE b.thread_id = %(thread)s "
                "AND b.checkpoint_ns = %(ns)s AND NOT EXISTS (SELECT 1 FROM checkpoints c "
                "WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns "
                "AND c.checkpoint->'channel_versions'->>b.channel = b.version)",
                lane,
            )
    return sum(len(ids) for ids in doomed.values())
