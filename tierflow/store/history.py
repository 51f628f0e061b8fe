"""Time travel and retention over either store: a thread's history, forks, pruning.

These work on tierflow's SQLite store and on the Postgres store alike (the SQL for
each lives with it), and each refuses bad input with one `CheckpointError` before
changing anything: an unknown thread, a checkpoint id the thread doesn't have, a fork
target that exists already, a retention rule that would keep nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierflow.errors import CheckpointError
from tierflow.store import blobs, codec, retention, writing
from tierflow.store.saver import SqliteStore

if TYPE_CHECKING:
    from tierflow.store.postgres import PostgresStore

    Store = SqliteStore | PostgresStore

MIN_PREFIX = 6  # characters of a checkpoint id's start or end that may stand for it


@dataclass(frozen=True)
class Entry:
    """One checkpoint of a thread: its step, what produced it, when, and its size (the
    bytes it added to the store: its row and the channel values new at it)."""

    checkpoint_id: str
    step: int | None
    source: str
    node: str
    ts: str
    size: int


def _node(source: str, task_paths: Sequence[str]) -> str:
    if source != "loop":
        return source  # input, update, fork
    names = sorted({path.split(", ")[1] if ", " in path else path for path in task_paths})
    return ",".join(names) or "-"


def history(store: Store, thread: str) -> list[Entry]:
    """The thread's checkpoints (root namespace), oldest first."""
    if isinstance(store, SqliteStore):
        rows = _sqlite_history(store, thread)
    else:
        from tierflow.store import postgres

        rows = postgres.history_rows(store, thread)
    if not rows:
        raise CheckpointError(f"unknown thread {thread!r}: it has no checkpoints")
    return [
        Entry(
            checkpoint_id=r["checkpoint_id"],
            step=r["step"],
            source=r["source"],
            node=_node(r["source"], r["task_paths"]),
            ts=r["ts"],
            size=r["size"],
        )
        for r in rows
    ]


def _sqlite_history(store: SqliteStore, thread: str) -> list[dict[str, Any]]:
    with store.transaction(write=False) as conn:
        lane = writing.thread_row(conn, thread, "")
        if lane is None:
            return []
        rows = conn.execute(
            "SELECT c.checkpoint_id, p.checkpoint_id, c.ts, c.type, c.payload "
            "FROM checkpoints c LEFT JOIN checkpoints p ON p.id = c.parent "
            "WHERE c.thread = ? ORDER BY c.checkpoint_id",
            (lane,),
        ).fetchall()
        values: dict[tuple[str, str], list[int]] = {}
        for channel, version, segments in conn.execute(
            "SELECT channel, version, segments FROM channel_values WHERE thread = ?", (lane,)
        ):
            values[(channel, version)] = blobs.unpack_ids(segments)
        wanted = {blob for ids in values.values() for blob in ids}
        sizes = blobs.sizes(conn, wanted)
        paths: dict[str, list[str]] = {}
        for packed, path in conn.execute(
            "SELECT checkpoint_id, task_path FROM tasks WHERE thread = ?", (lane,)
        ):
            paths.setdefault(codec.unpack_id(packed), []).append(path)
    found: list[dict[str, Any]] = []
    versions_of: dict[str, dict[str, Any]] = {}
    for checkpoint_id, parent_id, ts, type_, payload in rows:
        body = codec.unpack(store.serde, type_, payload, checkpoint_id, ts)
        versions = body.checkpoint["channel_versions"]
        versions_of[checkpoint_id] = versions
        parent = body.parent_id or parent_id
        before = versions_of.get(parent or "", {})
        new = [(c, str(v)) for c, v in versions.items() if before.get(c) != v]
        step = body.metadata.get("step")
        found.append(
            {
                "checkpoint_id": checkpoint_id,
                "step": step if isinstance(step, int) else None,
                "source": str(body.metadata.get("source", "")),
                "ts": body.checkpoint.get("ts", ""),
                "size": len(payload)
                + sum(sizes.get(blob, 0) for key in new for blob in values.get(key, [])),
                "task_paths": paths.get(parent or "", []),
            }
        )
    return found


def resolve(store: Store, thread: str, reference: str) -> str:
    """The checkpoint id of `thread` that `reference` names: in full, or by a unique
    start or end of at least six characters (ids made close together share their start,
    which is a timestamp, so the end is usually the short form to use)."""
    ids = [entry.checkpoint_id for entry in history(store, thread)]
    if reference in ids:
        return reference
    matches = [
        i
        for i in ids
        if len(reference) >= MIN_PREFIX and (i.startswith(reference) or i.endswith(reference))
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CheckpointError(f"checkpoint {reference!r} is ambiguous in thread {thread!r}")
    raise CheckpointError(f"thread {thread!r} has no checkpoint {reference!r}")


def thread_exists(store: Store, thread: str) -> bool:
    if isinstance(store, SqliteStore):
        with store.transaction(write=False) as conn:
            return bool(
                conn.execute(
                    "SELECT 1 FROM checkpoints c JOIN threads t ON t.id = c.thread "
                    "WHERE t.thread_id = ? LIMIT 1",
                    (thread,),
                ).fetchone()
            )
    from tierflow.store import postgres

    return postgres.thread_exists(store, thread)


def fork(store: Store, thread: str, reference: str, new_thread: str) -> str:
    """Start `new_thread` from checkpoint `reference` of `thread`: that checkpoint and
    its ancestors are copied (the fork point's pending tasks will run again). Returns
    the checkpoint id forked from."""
    checkpoint_id = resolve(store, thread, reference)
    if thread_exists(store, new_thread):
        raise CheckpointError(f"thread {new_thread!r} exists already: choose another --thread")
    if isinstance(store, SqliteStore):
        with store.transaction(write=True) as conn:
            retention.copy_thread(conn, store, thread, new_thread, upto=checkpoint_id)
    else:
        from tierflow.store import postgres

        postgres.fork(store, thread, checkpoint_id, new_thread)
    return checkpoint_id


def prune(
    store: Store,
    *,
    threads: Sequence[str] | None = None,
    keep_last: int | None = None,
    older_than: float | None = None,
) -> int:
    """Delete old checkpoints: all but the `keep_last` newest of each thread namespace,
    or those older than `older_than` (Unix time), or both conditions together. The
    newest checkpoint always stays, so every thread stays resumable. Returns how many."""
    if keep_last is None and older_than is None:
        raise CheckpointError("say what to prune: --keep-last N and/or --older-than DAYS")
    if keep_last is not None and keep_last < 1:
        raise CheckpointError("--keep-last must be at least 1: the latest checkpoint stays")
    for thread in threads or ():
        if not thread_exists(store, thread):
            raise CheckpointError(f"unknown thread {thread!r}: it has no checkpoints")
    keep = keep_last if keep_last is not None else 1
    if isinstance(store, SqliteStore):
        return store.keep(threads, keep_last=keep, older_than=older_than)
    from tierflow.store import postgres

    return postgres.keep(store, threads, keep, older_than)
