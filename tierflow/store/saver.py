"""tierflow's SQLite checkpoint saver: normalised, so a long thread grows linearly.

LangGraph's `SqliteSaver` writes the whole state at every step; a conversation's
checkpoints therefore grow with the square of its length. This saver writes what
changed: each channel value once per version (`channel_values`), lists as deltas on
the version before (`values.py`), each serialised value once however often it is
referenced (`blobs.py`). Reading a checkpoint rebuilds exactly the values LangGraph put.

It is sync and async (the async methods run the sync ones in a worker thread, on the
same connection, under the same lock), and owns its connection: use it as a context
manager. Several processes may share one file (WAL, busy timeout, `BEGIN IMMEDIATE`).

The saver keeps the locking and its in-memory hints; the SQL is in `writing.py`,
`reading.py` and `retention.py` (deleting, pruning, copying).
"""

from __future__ import annotations

import builtins
import random
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from tierflow.store import blobs, reading, retention, values, writing
from tierflow.store.database import SqliteDatabase
from tierflow.store.hints import Lru, Written
from tierflow.store.threaded import AsyncInWorkerThread
from tierflow.store.values import Base, Loader
from tierflow.testing.faults import crash_point

INLINE_TEXT = 64  # characters: a string this short lives in the checkpoint row


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

    # -- writing (writing.py holds the SQL) ------------------------------------

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
                thread = writing.thread_row(conn, thread_id, namespace, create=True)
                assert thread is not None
                rows = {p.channel: self._put_value(conn, thread, p, writes) for p in planned}
                writing.put_checkpoint(
                    conn,
                    self.serde,
                    thread,
                    checkpoint,
                    inline=inline,
                    meta=meta,
                    parent_id=parent_id,
                )
                crash_point("checkpoint.write")  # written, not yet committed
            for p in planned:
                if p.kind == values.LIST:
                    items = list(p.value)
                    self._bases.put(
                        (thread_id, namespace, p.channel), Base(p.version, rows[p.channel], items)
                    )
        return reading.checkpoint_config(thread_id, namespace, checkpoint["id"])

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

    def _put_value(
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
        return values.put(conn, thread, planned)

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
        with self.lock:
            with self.transaction(write=True) as conn:
                thread = writing.thread_row(conn, thread_id, namespace, create=True)
                assert thread is not None
                writing.put_task_writes(
                    conn,
                    thread,
                    checkpoint_id,
                    task_id,
                    task_path=task_path,
                    writes=[(idx, channel, blob) for idx, channel, _, blob in encoded],
                    replace=replace,
                )
            key = (thread_id, namespace, checkpoint_id)
            known = {(w.task_id, w.idx): w for w in self._writes.get(key) or ()}
            for idx, channel, value, _ in encoded:
                if replace or (task_id, idx) not in known:
                    known[(task_id, idx)] = Written(task_path, task_id, idx, channel, value)
            self._writes.put(key, sorted(known.values(), key=lambda w: w[:3]))

    # -- reading (reading.py holds the SQL) ------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        namespace = str(configurable.get("checkpoint_ns", ""))
        with self.lock, self.transaction(write=False) as conn:
            row = reading.checkpoint_row(conn, thread_id, namespace, get_checkpoint_id(config))
            if row is None:
                return None
            loader = Loader(conn, self.serde)
            decoded = reading.unpack(self.serde, row)
            found, list_rows = reading.checkpoint_tuple(conn, self.serde, loader, row, decoded)
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
        selected = reading.list_conditions(config, before)
        remaining = limit
        after: tuple[str, int] | None = None
        loader: Loader | None = None
        seen: tuple[int, int] | None = None
        while remaining is None or remaining > 0:
            page: builtins.list[CheckpointTuple] = []
            with self.lock, self.transaction(write=False) as conn:
                rows = reading.list_page(conn, selected, after)
                # The loader's memory of rows and blobs (by id) carries over to the next
                # page only if nothing was committed meanwhile that could have deleted
                # (and so freed for reuse) an id: by another connection, or by this one.
                now = (conn.execute("PRAGMA data_version").fetchone()[0], self._deletions)
                if loader is None or now != seen:
                    loader = Loader(conn, self.serde)
                loader.conn, seen = conn, now
                for row in rows:
                    body = reading.unpack(self.serde, row)
                    if filter and not reading.matches(body.metadata, filter):
                        continue
                    page.append(reading.checkpoint_tuple(conn, self.serde, loader, row, body)[0])
                    if remaining is not None and len(page) >= remaining:
                        break
            yield from page
            if remaining is not None:
                remaining -= len(page)
            if len(rows) < reading.LIST_PAGE:
                return
            after = (rows[-1].checkpoint_id, rows[-1].thread)

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
