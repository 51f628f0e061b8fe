"""Reading checkpoints back from the SQLite store's tables: the rows `get_tuple` and each
page of `list` select, and each row rebuilt into the `CheckpointTuple` LangGraph put."""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from tierflow.store import blobs, codec
from tierflow.store.values import Loader

LIST_PAGE = 256  # checkpoints per read transaction (and per value loader) in `list`

# The columns `Row` reads, from `checkpoints c`, its `threads t` and its parent `p`.
SELECT_ROWS = (
    "SELECT c.id, c.thread, t.thread_id, t.checkpoint_ns, c.checkpoint_id, p.checkpoint_id, "
    "c.ts, c.type, c.payload FROM checkpoints c JOIN threads t ON t.id = c.thread "
    "LEFT JOIN checkpoints p ON p.id = c.parent"
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


class Conditions(NamedTuple):
    """A `WHERE` clause's conditions (joined by `AND`) and their parameters."""

    where: list[str]
    params: list[Any]


def checkpoint_row(
    conn: sqlite3.Connection, thread_id: str, namespace: str, checkpoint_id: str | None
) -> Row | None:
    """The row of checkpoint `checkpoint_id` of (thread, namespace); its latest if None."""
    query = SELECT_ROWS + " WHERE t.thread_id = ? AND t.checkpoint_ns = ?"
    if checkpoint_id is None:
        found = conn.execute(
            query + " ORDER BY c.checkpoint_id DESC LIMIT 1", (thread_id, namespace)
        ).fetchone()
    else:
        found = conn.execute(
            query + " AND c.checkpoint_id = ?", (thread_id, namespace, checkpoint_id)
        ).fetchone()
    return None if found is None else Row(*found)


def list_conditions(config: RunnableConfig | None, before: RunnableConfig | None) -> Conditions:
    """What `list(config, before=...)` selects: a thread, a namespace, a checkpoint, and
    only checkpoints older than `before`'s."""
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
    return Conditions(where, params)


def list_page(
    conn: sqlite3.Connection, selected: Conditions, after: tuple[str, int] | None
) -> list[Row]:
    """One page of `list`, newest first: up to `LIST_PAGE` rows, those after the row
    `after` (its checkpoint id and thread row) if given."""
    where, params = list(selected.where), list(selected.params)
    if after is not None:
        where.append("(c.checkpoint_id < ? OR (c.checkpoint_id = ? AND c.thread < ?))")
        params += [after[0], after[0], after[1]]
    query = (
        SELECT_ROWS
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY c.checkpoint_id DESC, c.thread DESC LIMIT ?"
    )
    return [Row(*r) for r in conn.execute(query, [*params, LIST_PAGE])]


def unpack(serde: SerializerProtocol, row: Row) -> codec.Body:
    return codec.unpack(serde, row.type, row.payload, row.checkpoint_id, row.ts)


def checkpoint_tuple(
    conn: sqlite3.Connection,
    serde: SerializerProtocol,
    loader: Loader,
    row: Row,
    decoded: codec.Body,
) -> tuple[CheckpointTuple, dict[str, int]]:
    """The checkpoint of `row` with its channel values and pending writes, and the row of
    each list value it holds (by channel)."""
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
            config=checkpoint_config(thread_id, namespace, checkpoint_id),
            checkpoint=checkpoint,
            metadata=meta,
            parent_config=checkpoint_config(thread_id, namespace, parent_id) if parent_id else None,
            pending_writes=pending_writes(conn, serde, row.thread, checkpoint_id),
        ),
        list_rows,
    )


def pending_writes(
    conn: sqlite3.Connection, serde: SerializerProtocol, thread: int, checkpoint_id: str
) -> list[PendingWrite]:
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
        (task_id, ch, serde.loads_typed(raw[blob]))
        for _, task_id, _, ch, blob in sorted(found, key=lambda w: w[:3])
    ]


def matches(metadata: CheckpointMetadata, wanted: dict[str, Any]) -> bool:
    return all(metadata.get(key) == value for key, value in wanted.items())


def checkpoint_config(thread_id: str, namespace: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": namespace,
            "checkpoint_id": checkpoint_id,
        }
    }
