"""tierflow's SQLite checkpoint saver: normalised, so a long thread grows linearly.

LangGraph's `SqliteSaver` writes the whole state at every step; a conversation's
checkpoints therefore grow with the square of its length. This saver writes what
changed: each channel value once per version (`channel_values`), lists as deltas on
the version before (`values.py`), each serialised value once however often it is
referenced (`blobs.py`). Reading a checkpoint rebuilds exactly the values LangGraph put.

It is sync and async (the async methods run the sync ones in a worker thread, on the
same connection, under the same lock), and owns its connection: use it as a context
manager. Several processes may share one file (WAL, busy timeout, `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import builtins
import random
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, NamedTuple, Self, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from tierflow.store import blobs, codec, retention, values
from tierflow.store.database import SqliteDatabase
from tierflow.store.hints import Lru, Written
from tierflow.store.threaded import AsyncInWorkerThread
from tierflow.store.values import Base, Loader
from tierflow.testing.faults import crash_point

INLINE_TEXT = 64  # characters: a string this short lives in the checkpoint row
LIST_PAGE = 256  # checkpoints per read transaction (and per value loader) in `list`

# The columns `Row` reads, from `checkpoints c`, its `threads t` and its parent `p`.
ROW_COLUMNS = (
    "c.id, c.thread, t.thread_id, t.checkpoint_ns, c.checkpoint_id, p.checkpoint_id, "
    "c.ts, c.type, c.payload"
)


class Row(NamedTuple):
    id: int
    thread: int
    thread_id: str
    namespace: str
    checkpoint_id: str
    parent_id: str | None
    ts: int | None
    type: str
    payload: bytes


def _inline(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and len(value) <= INLINE_TEXT


class SqliteStore(AsyncInWorkerThread, BaseCheckpointSaver[str]):
    """The default checkpoint saver: one SQLite file, normalised, sync and async."""

    def __init__(self, db: SqliteDatabase, *, serde: SerializerProtocol | None = None) -> None:
        """A saver on the process's connection `db` (`database.acquire_sqlite`); closing
        the saver releases it."""
        super().__init__(serde=serde)
        self.db = db
        self.conn = db.conn
        self.path = db.path
        self.lock = db.lock
        self._closed = False
        # In-memory hints, never trusted without a check against the file: the last
        # list value of each (thread, namespace, channel), which the next version is
        # likely to extend, and each recent checkpoint's writes, which the next
        # version's new items are likely to be.
        self._bases: Lru[tuple[str, str, str], Base] = Lru(1024)
        self._writes: Lru[tuple[str, str, str], list[Written]] = Lru(256)
        self._deletions = 0  # bumped by every delete through this saver

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        with self.lock:
            if self._closed:
                return
            self._closed = True
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

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction on the process's connection (errors: `CheckpointError`)."""
        with self.db.transaction(write=write) as tx:
            yield tx.conn

    def get_next_version(self, current: str | None, channel: None) -> str:
        # Monotonic, and random in the tail so two forks of one thread never store
        # different values under one version. Shorter than LangGraph's 50 characters:
        # versions are repeated in every checkpoint row.
        if current is None:
            number = 0
        elif isinstance(current, int | float):
            number = int(current)
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:010d}.{random.getrandbits(32):08x}"

    # -- writing ---------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        namespace = str(configurable.get("checkpoint_ns", ""))
        parent_id: str | None = configurable.get("checkpoint_id")
        channel_values = checkpoint["channel_values"]
        inline = {k: v for k, v in channel_values.items() if _inline(v)}
        meta = get_serializable_checkpoint_metadata(config, metadata)
        with self.lock:
            writes = self._writes.get((thread_id, namespace, parent_id or ""))
            planned = [
                self._plan(
                    thread_id,
                    namespace=namespace,
                    channel=channel,
                    version=str(version),
                    channel_values=channel_values,
                    writes=writes,
                )
                for channel, version in new_versions.items()
                if channel not in inline
            ]
            with self.transaction(write=True) as conn:
                thread = retention.thread_row(conn, thread_id, namespace, create=True)
                assert thread is not None
                rows = {p.channel: self._store_value(conn, thread, p, writes) for p in planned}
                parent = None
                if parent_id is not None:
                    found = conn.execute(
                        "SELECT id FROM checkpoints WHERE thread = ? AND checkpoint_id = ?",
                        (thread, parent_id),
                    ).fetchone()
                    parent = found[0] if found else None
                # The parent's id is kept in the payload only when there is no row to link.
                payload_type, payload, ts = codec.pack(
                    self.serde, checkpoint, inline, meta, None if parent else parent_id
                )
                step = meta.get("step")
                conn.execute(
                    "INSERT INTO checkpoints "
                    "(thread, checkpoint_id, parent, run_id, step, ts, type, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (thread, checkpoint_id) DO UPDATE SET parent = excluded.parent, "
                    "run_id = excluded.run_id, step = excluded.step, ts = excluded.ts, "
                    "type = excluded.type, payload = excluded.payload",
                    (
                        thread,
                        checkpoint["id"],
                        parent,
                        meta.get("run_id"),
                        step if isinstance(step, int) else None,
                        ts,
                        payload_type,
                        payload,
                    ),
                )
                crash_point("checkpoint.write")  # written, not yet committed
            for p in planned:
                if p.kind == values.LIST:
                    items = list(p.value)
                    self._bases.put(
                        (thread_id, namespace, p.channel), Base(p.version, rows[p.channel], items)
                    )
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": namespace,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def _plan(
        self,
        thread_id: str,
        *,
        namespace: str,
        channel: str,
        version: str,
        channel_values: dict[str, Any],
        writes: list[Written] | None,
    ) -> values.Planned:
        value = channel_values.get(channel, values.MISSING)
        base = self._bases.get((thread_id, namespace, channel))
        written = [w.value for w in writes or () if w.channel == channel]
        return values.plan(self.serde, channel, version, value, base=base, writes=written)

    def _store_value(
        self,
        conn: sqlite3.Connection,
        thread: int,
        planned: values.Planned,
        writes: list[Written] | None,
    ) -> int:
        if planned.base is not None and not values.still_stored(
            conn, thread, planned.channel, planned.base
        ):
            written = [w.value for w in writes or () if w.channel == planned.channel]
            planned = values.plan(
                self.serde,
                planned.channel,
                planned.version,
                planned.value,
                base=None,
                writes=written,
            )
        return values.store(conn, thread, planned)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        namespace = str(configurable.get("checkpoint_ns", ""))
        checkpoint_id = str(configurable["checkpoint_id"])
        # Writes to the special channels (errors, interrupts, …) replace earlier ones.
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        encoded = [
            (WRITES_IDX_MAP.get(channel, index), channel, value, blobs.encode(self.serde, value))
            for index, (channel, value) in enumerate(writes)
        ]
        conflict = (
            "DO UPDATE SET channel = excluded.channel, blob = excluded.blob"
            if replace
            else "DO NOTHING"
        )
        with self.lock:
            with self.transaction(write=True) as conn:
                thread = retention.thread_row(conn, thread_id, namespace, create=True)
                task_key = (thread, codec.pack_id(checkpoint_id), codec.pack_id(task_id))
                task = blobs.insert_id(
                    conn,
                    "INSERT INTO tasks (thread, checkpoint_id, task_id, task_path) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (*task_key, task_path),
                    "SELECT id FROM tasks WHERE thread = ? AND checkpoint_id = ? AND task_id = ?",
                    task_key,
                )
                conn.executemany(
                    "INSERT INTO writes (task, idx, channel, blob) VALUES (?, ?, ?, ?) "
                    f"ON CONFLICT (task, idx) {conflict}",
                    [
                        (task, idx, channel, blobs.store(conn, blob))
                        for idx, channel, _, blob in encoded
                    ],
                )
            key = (thread_id, namespace, checkpoint_id)
            known = {(w.task_id, w.idx): w for w in self._writes.get(key) or ()}
            for idx, channel, value, _ in encoded:
                if replace or (task_id, idx) not in known:
                    known[(task_id, idx)] = Written(task_path, task_id, idx, channel, value)
            self._writes.put(key, sorted(known.values(), key=lambda w: w[:3]))

    # -- reading ---------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        namespace = str(configurable.get("checkpoint_ns", ""))
        checkpoint_id = get_checkpoint_id(config)
        with self.lock, self.transaction(write=False) as conn:
            query = (
                f"SELECT {ROW_COLUMNS} FROM checkpoints c JOIN threads t ON t.id = c.thread "
                "LEFT JOIN checkpoints p ON p.id = c.parent "
                "WHERE t.thread_id = ? AND t.checkpoint_ns = ?"
            )
            if checkpoint_id is None:
                found_row = conn.execute(
                    query + " ORDER BY c.checkpoint_id DESC LIMIT 1", (thread_id, namespace)
                ).fetchone()
            else:
                found_row = conn.execute(
                    query + " AND c.checkpoint_id = ?", (thread_id, namespace, checkpoint_id)
                ).fetchone()
            if found_row is None:
                return None
            row = Row(*found_row)
            loader = Loader(conn, self.serde)
            found, list_rows = self._tuple(conn, loader, row, self._unpack(row))
        # What a run resumes from is what its next step will extend.
        channel_values = found.checkpoint["channel_values"]
        versions = found.checkpoint["channel_versions"]
        for channel, row_id in list_rows.items():
            items = list(channel_values[channel])
            self._bases.put(
                (thread_id, namespace, channel), Base(str(versions[channel]), row_id, items)
            )
        if found.pending_writes:
            self._writes.put(
                (thread_id, namespace, str(row.checkpoint_id)),
                [Written("", t, i, c, v) for i, (t, c, v) in enumerate(found.pending_writes)],
            )
        return found

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        where: list[str] = []
        params: list[Any] = []
        if config is not None:
            configurable = config["configurable"]
            where.append("t.thread_id = ?")
            params.append(str(configurable["thread_id"]))
            if configurable.get("checkpoint_ns") is not None:
                where.append("t.checkpoint_ns = ?")
                params.append(str(configurable["checkpoint_ns"]))
            if (checkpoint_id := get_checkpoint_id(config)) is not None:
                where.append("c.checkpoint_id = ?")
                params.append(checkpoint_id)
        if before is not None and (before_id := get_checkpoint_id(before)) is not None:
            where.append("c.checkpoint_id < ?")
            params.append(before_id)
        remaining = limit
        cursor: tuple[str, int] | None = None
        loader: Loader | None = None
        seen: tuple[int, int] | None = None
        while remaining is None or remaining > 0:
            page_where = list(where)
            page_params = list(params)
            if cursor is not None:
                page_where.append("(c.checkpoint_id < ? OR (c.checkpoint_id = ? AND c.thread < ?))")
                page_params += [cursor[0], cursor[0], cursor[1]]
            query = (
                f"SELECT {ROW_COLUMNS} FROM checkpoints c JOIN threads t ON t.id = c.thread "
                "LEFT JOIN checkpoints p ON p.id = c.parent"
                + (" WHERE " + " AND ".join(page_where) if page_where else "")
                + " ORDER BY c.checkpoint_id DESC, c.thread DESC LIMIT ?"
            )
            page: list[CheckpointTuple] = []
            with self.lock, self.transaction(write=False) as conn:
                rows = [Row(*r) for r in conn.execute(query, [*page_params, LIST_PAGE])]
                # The loader's memory of rows and blobs (by id) carries over to the next
                # page only if nothing was committed meanwhile that could have deleted
                # (and so freed for reuse) an id: by another connection, or by this one.
                now = (conn.execute("PRAGMA data_version").fetchone()[0], self._deletions)
                if loader is None or now != seen:
                    loader = Loader(conn, self.serde)
                loader.conn, seen = conn, now
                for row in rows:
                    body = self._unpack(row)
                    if filter and not _matches(body.metadata, filter):
                        continue
                    page.append(self._tuple(conn, loader, row, body)[0])
                    if remaining is not None and len(page) >= remaining:
                        break
            yield from page
            if remaining is not None:
                remaining -= len(page)
            if len(rows) < LIST_PAGE:
                return
            cursor = (rows[-1].checkpoint_id, rows[-1].thread)

    def _tuple(
        self, conn: sqlite3.Connection, loader: Loader, row: Row, decoded: codec.Body
    ) -> tuple[CheckpointTuple, dict[str, int]]:
        body, meta = decoded.checkpoint, decoded.metadata
        parent_id = decoded.parent_id or row.parent_id
        thread_id, namespace, checkpoint_id = row.thread_id, row.namespace, row.checkpoint_id
        inline: dict[str, Any] = body["channel_values"]
        wanted = {
            channel: str(version)
            for channel, version in body["channel_versions"].items()
            if channel not in inline
        }
        loaded, list_rows = loader.load(row.thread, wanted)
        checkpoint = cast(Checkpoint, {**body, "channel_values": {**inline, **loaded}})
        return (
            CheckpointTuple(
                config=_config(thread_id, namespace, checkpoint_id),
                checkpoint=checkpoint,
                metadata=meta,
                parent_config=_config(thread_id, namespace, parent_id) if parent_id else None,
                pending_writes=self._pending_writes(conn, row.thread, checkpoint_id),
            ),
            list_rows,
        )

    def _pending_writes(
        self, conn: sqlite3.Connection, thread: int, checkpoint_id: str
    ) -> builtins.list[PendingWrite]:
        rows = conn.execute(
            "SELECT t.task_path, t.task_id, w.idx, w.channel, w.blob FROM tasks t "
            "JOIN writes w ON w.task = t.id WHERE t.thread = ? AND t.checkpoint_id = ?",
            (thread, codec.pack_id(checkpoint_id)),
        ).fetchall()
        if not rows:
            return []
        raw = blobs.load(conn, (row[4] for row in rows))
        # LangGraph applies a superstep's writes in `writes_sort_key` order.
        found = [(path, codec.unpack_id(task), idx, ch, blob) for path, task, idx, ch, blob in rows]
        return [
            (task_id, ch, self.serde.loads_typed(raw[blob]))
            for _, task_id, _, ch, blob in sorted(found, key=lambda w: w[:3])
        ]

    def _unpack(self, row: Row) -> codec.Body:
        return codec.unpack(self.serde, row.type, row.payload, row.checkpoint_id, row.ts)

    # -- deleting and copying (retention.py holds the SQL) -----------------------

    def delete_thread(self, thread_id: str) -> None:
        with self.lock:
            with self.transaction(write=True) as conn:
                retention.delete_threads(conn, [str(thread_id)])
            self._forget(str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        with self.lock:
            with self.transaction(write=True) as conn:
                retention.delete_runs(conn, self, [str(r) for r in run_ids])
            self._bases.data.clear()
            self._writes.data.clear()
            self._deletions += 1

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        with self.lock, self.transaction(write=True) as conn:
            retention.copy_thread(conn, self, str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread ids, not a str")
        threads = [str(t) for t in thread_ids]
        if strategy == "delete":
            with self.lock:
                with self.transaction(write=True) as conn:
                    retention.delete_threads(conn, threads)
                for thread_id in threads:
                    self._forget(thread_id)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r}")
        self.keep(threads, keep_last=1)

    def keep(
        self,
        thread_ids: Sequence[str] | None,
        *,
        keep_last: int = 1,
        older_than: float | None = None,
    ) -> int:
        """Delete the checkpoints of `thread_ids` (all threads if None) except each
        namespace's `keep_last` newest and, with `older_than` (a Unix time), those not
        older than it. Returns how many checkpoints were deleted."""
        with self.lock:
            with self.transaction(write=True) as conn:
                deleted = retention.keep(conn, self, thread_ids, keep_last, older_than)
            self._bases.data.clear()
            self._writes.data.clear()
            self._deletions += 1
        return deleted

    def _forget(self, thread_id: str) -> None:
        self._deletions += 1
        self._bases.forget(thread_id)
        self._writes.forget(thread_id)


def _config(thread_id: str, namespace: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": namespace,
            "checkpoint_id": checkpoint_id,
        }
    }


def _matches(metadata: CheckpointMetadata, wanted: dict[str, Any]) -> bool:
    return all(metadata.get(key) == value for key, value in wanted.items())
