"""Writing checkpoints and pending writes to the SQLite store's tables, inside the
caller's transaction. (Channel values are planned by the saver and written by
`values.py`; serialised values are shared through `blobs.py`.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata
from langgraph.checkpoint.serde.base import SerializerProtocol

from tierflow.store import blobs, codec
from tierflow.store.blobs import Blob


def thread_row(
    conn: sqlite3.Connection, thread_id: str, namespace: str, *, create: bool = False
) -> int | None:
    """The `threads` row of (thread id, namespace); created if asked."""
    if create:
        conn.execute(
            "INSERT INTO threads (thread_id, checkpoint_ns) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (thread_id, namespace),
        )
    row = conn.execute(
        "SELECT id FROM threads WHERE thread_id = ? AND checkpoint_ns = ?", (thread_id, namespace)
    ).fetchone()
    return int(row[0]) if row else None


def put_checkpoint(
    conn: sqlite3.Connection,
    serde: SerializerProtocol,
    thread: int,
    checkpoint: Checkpoint,
    *,
    inline: dict[str, Any],
    meta: CheckpointMetadata,
    parent_id: str | None,
) -> None:
    """Write the checkpoint's row (replacing an earlier one of its id), linked to its
    parent's row; `inline` are the channel values it holds itself."""
    parent = None
    if parent_id is not None:
        found = conn.execute(
            "SELECT id FROM checkpoints WHERE thread = ? AND checkpoint_id = ?",
            (thread, parent_id),
        ).fetchone()
        parent = found[0] if found else None
    # The parent's id is kept in the payload only when there is no row to link.
    payload_type, payload, ts = codec.pack(
        serde, checkpoint, inline, meta, None if parent else parent_id
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


def put_task_writes(
    conn: sqlite3.Connection,
    thread: int,
    checkpoint_id: str,
    task_id: str,
    *,
    task_path: str,
    writes: Sequence[tuple[int, str, Blob]],
    replace: bool,
) -> None:
    """Write a task's pending writes, `(index, channel, blob)` each: kept if the task
    wrote that index already, unless `replace`."""
    conflict = (
        "DO UPDATE SET channel = excluded.channel, blob = excluded.blob"
        if replace
        else "DO NOTHING"
    )
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
        [(task, idx, channel, blobs.put(conn, blob)) for idx, channel, blob in writes],
    )
