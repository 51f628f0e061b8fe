"""Deleting, pruning and copying checkpoints in the SQLite store, inside one transaction.

Pruning never breaks what is kept: a kept checkpoint keeps every channel value it
refers to, and every earlier list version its values extend, its pending writes (so a
run interrupted there resumes), and the blobs all of these use. A kept checkpoint whose
parent is deleted becomes a root (no parent), as with LangGraph's Postgres saver.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from tierflow.errors import CheckpointError
from tierflow.store import blobs, codec, writing

if TYPE_CHECKING:
    from tierflow.store.saver import SqliteStore

# Graphs using LangGraph's (beta) DeltaChannel rebuild values from older checkpoints'
# writes, which pruning would delete.
DELTA_MARK = "counters_since_delta_snapshot"


def _lanes(conn: sqlite3.Connection, thread_ids: Sequence[str] | None) -> list[tuple[int, str]]:
    """(row, thread id) of every namespace of `thread_ids` (of all threads if None)."""
    if thread_ids is None:
        return [(r, t) for r, t in conn.execute("SELECT id, thread_id FROM threads ORDER BY id")]
    lanes: list[tuple[int, str]] = []
    for thread_id in thread_ids:
        rows = conn.execute("SELECT id FROM threads WHERE thread_id = ?", (thread_id,))
        lanes += [(int(r), thread_id) for (r,) in rows]
    return lanes


def _bodies(conn: sqlite3.Connection, store: SqliteStore, lane: int) -> Iterator[codec.Body]:
    rows = conn.execute(
        "SELECT checkpoint_id, ts, type, payload FROM checkpoints WHERE thread = ?", (lane,)
    ).fetchall()
    for checkpoint_id, ts, type_, payload in rows:
        yield codec.unpack(store.serde, type_, payload, checkpoint_id, ts)


def delete_threads(conn: sqlite3.Connection, thread_ids: Sequence[str]) -> None:
    lanes = [lane for lane, _ in _lanes(conn, thread_ids)]
    for lane in lanes:
        conn.execute(
            "DELETE FROM writes WHERE task IN (SELECT id FROM tasks WHERE thread = ?)", (lane,)
        )
        conn.execute("DELETE FROM tasks WHERE thread = ?", (lane,))
        conn.execute("DELETE FROM channel_values WHERE thread = ?", (lane,))
        conn.execute("DELETE FROM checkpoints WHERE thread = ?", (lane,))
        conn.execute("DELETE FROM threads WHERE id = ?", (lane,))
    if lanes:
        blobs.collect_garbage(conn)


def keep(
    conn: sqlite3.Connection,
    store: SqliteStore,
    thread_ids: Sequence[str] | None,
    keep_last: int,
    older_than: float | None,
) -> int:
    """Delete all but each namespace's `keep_last` newest checkpoints (at least one),
    sparing those not older than `older_than` (Unix time). Returns how many went."""
    doomed: dict[int, list[int]] = {}
    for lane, thread_id in _lanes(conn, thread_ids):
        rows = conn.execute(
            "SELECT id, ts FROM checkpoints WHERE thread = ? ORDER BY checkpoint_id DESC", (lane,)
        ).fetchall()
        cutoff = None if older_than is None else int(older_than * 1e6)
        old = [
            row_id
            for row_id, ts in rows[max(keep_last, 1) :]
            if cutoff is None or ts is None or ts < cutoff
        ]
        if not old:
            continue
        if any(DELTA_MARK in body.metadata for body in _bodies(conn, store, lane)):
            raise CheckpointError(
                f"thread {thread_id!r} uses a DeltaChannel, whose values are rebuilt from "
                "older checkpoints: it can't be pruned"
            )
        doomed[lane] = old
    for lane, row_ids in doomed.items():
        delete_checkpoints(conn, store, lane, row_ids)
    if doomed:
        blobs.collect_garbage(conn)
    return sum(len(ids) for ids in doomed.values())


def delete_runs(conn: sqlite3.Connection, store: SqliteStore, run_ids: Sequence[str]) -> None:
    by_lane: dict[int, list[int]] = defaultdict(list)
    for run_id in run_ids:
        for row_id, lane in conn.execute(
            "SELECT id, thread FROM checkpoints WHERE run_id = ?", (run_id,)
        ):
            by_lane[lane].append(row_id)
    for lane, row_ids in by_lane.items():
        delete_checkpoints(conn, store, lane, row_ids)
    if by_lane:
        blobs.collect_garbage(conn)


def delete_checkpoints(
    conn: sqlite3.Connection, store: SqliteStore, lane: int, row_ids: list[int]
) -> None:
    """Delete checkpoints `row_ids` of one namespace, their writes, and the channel
    values nothing kept refers to (blobs are the caller's to collect)."""
    doomed = set(row_ids)
    checkpoint_ids = [
        codec.pack_id(cid)
        for row_id, cid in conn.execute(
            "SELECT id, checkpoint_id FROM checkpoints WHERE thread = ?", (lane,)
        )
        if row_id in doomed
    ]
    for start in range(0, len(checkpoint_ids), blobs.PARAMS_PER_QUERY):
        chunk = checkpoint_ids[start : start + blobs.PARAMS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        tasks = f"SELECT id FROM tasks WHERE thread = ? AND checkpoint_id IN ({marks})"
        conn.execute(f"DELETE FROM writes WHERE task IN ({tasks})", [lane, *chunk])
        conn.execute(
            f"DELETE FROM tasks WHERE thread = ? AND checkpoint_id IN ({marks})", [lane, *chunk]
        )
    blobs.delete_ids(conn, "DELETE FROM checkpoints WHERE id IN ({})", sorted(doomed))
    # Kept checkpoints whose parent is gone become roots. (A payload names its parent
    # only when it had no row to link to; such a checkpoint keeps that name.)
    conn.execute(
        "UPDATE checkpoints SET parent = NULL WHERE thread = ? AND parent IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM checkpoints p WHERE p.id = checkpoints.parent)",
        (lane,),
    )
    collect_values(conn, store, lane)


def collect_values(conn: sqlite3.Connection, store: SqliteStore, lane: int) -> None:
    """Delete the channel values of one namespace that no checkpoint of it refers to,
    directly or as the base a referenced list version extends."""
    referenced: set[tuple[str, str]] = set()
    for decoded in _bodies(conn, store, lane):
        body = decoded.checkpoint
        inline = body["channel_values"]
        referenced.update(
            (channel, str(version))
            for channel, version in body["channel_versions"].items()
            if channel not in inline
        )
    rows = conn.execute(
        "SELECT id, channel, version, base FROM channel_values WHERE thread = ?", (lane,)
    ).fetchall()
    base_of = {row_id: base for row_id, _, _, base in rows}
    live: set[int] = set()
    for row_id, channel, version, _ in rows:
        if (channel, version) not in referenced:
            continue
        cursor: int | None = row_id
        while cursor is not None and cursor not in live:
            live.add(cursor)
            cursor = base_of.get(cursor)
    dead = [row_id for row_id, _, _, _ in rows if row_id not in live]
    blobs.delete_ids(conn, "DELETE FROM channel_values WHERE id IN ({})", dead)


# The named parameters of a copy's statements: the `source` and `target` namespace rows
# and the fork point `upto` (None: copy everything).
Names = dict[str, int | str | None]


def copy_thread(
    conn: sqlite3.Connection,
    store: SqliteStore,
    source: str,
    target: str,
    *,
    upto: str | None = None,
) -> int:
    """Copy `source`'s checkpoints, values and writes to `target`; blobs are shared.

    With `upto` (a checkpoint id of the root namespace), copy only that checkpoint and
    its ancestors: the target continues from there. Returns checkpoints copied."""
    copied = 0
    for lane, _ in _lanes(conn, [source]):
        (namespace,) = conn.execute(
            "SELECT checkpoint_ns FROM threads WHERE id = ?", (lane,)
        ).fetchone()
        if upto is not None and namespace != "":
            continue
        target_lane = writing.thread_row(conn, target, namespace, create=True)
        assert target_lane is not None
        names: Names = {"source": lane, "target": target_lane, "upto": upto}
        chosen = _chosen(upto)
        copied += _copy_checkpoints(conn, names, chosen)
        _copy_values(conn, names)
        _copy_writes(conn, names, chosen)
        if upto is not None:
            collect_values(conn, store, target_lane)
    return copied


def _chosen(upto: str | None) -> str:
    """A query of the ids of the source's checkpoints to copy: all of them, or the fork
    point `:upto` and its ancestors."""
    if upto is None:
        return "SELECT id FROM checkpoints WHERE thread = :source"
    return (
        "WITH RECURSIVE chain(id) AS ("
        "SELECT id FROM checkpoints WHERE thread = :source AND checkpoint_id = :upto "
        "UNION ALL SELECT c.parent FROM checkpoints c JOIN chain ON c.id = chain.id "
        "WHERE c.parent IS NOT NULL) SELECT id FROM chain"
    )


def _copy_checkpoints(conn: sqlite3.Connection, names: Names, chosen: str) -> int:
    """Copy the chosen checkpoints, each linked to its parent's copy; how many."""
    copied = conn.execute(
        "INSERT INTO checkpoints "
        "(thread, checkpoint_id, parent, run_id, step, ts, type, payload) "
        "SELECT :target, checkpoint_id, NULL, run_id, step, ts, type, payload FROM checkpoints "
        f"WHERE id IN ({chosen}) ORDER BY id ON CONFLICT DO NOTHING",
        names,
    ).rowcount
    conn.execute(
        "UPDATE checkpoints SET parent = ("
        "SELECT d.id FROM checkpoints s JOIN checkpoints sp ON sp.id = s.parent "
        "JOIN checkpoints d ON d.thread = :target AND d.checkpoint_id = sp.checkpoint_id "
        "WHERE s.thread = :source AND s.checkpoint_id = checkpoints.checkpoint_id) "
        "WHERE thread = :target AND parent IS NULL",
        names,
    )
    return copied


def _copy_values(conn: sqlite3.Connection, names: Names) -> None:
    """Copy every channel value, each list delta linked to its base's copy (a fork's
    unreferenced ones are collected after)."""
    conn.execute(
        "INSERT INTO channel_values (thread, channel, version, kind, base, prefix, segments) "
        "SELECT :target, channel, version, kind, NULL, prefix, segments FROM channel_values "
        "WHERE thread = :source ORDER BY id ON CONFLICT DO NOTHING",
        names,
    )
    conn.execute(
        "UPDATE channel_values SET base = ("
        "SELECT d.id FROM channel_values s JOIN channel_values sb ON sb.id = s.base "
        "JOIN channel_values d ON d.thread = :target AND d.channel = sb.channel "
        "AND d.version = sb.version WHERE s.thread = :source "
        "AND s.channel = channel_values.channel AND s.version = channel_values.version) "
        "WHERE thread = :target AND base IS NULL",
        names,
    )


def _copy_writes(conn: sqlite3.Connection, names: Names, chosen: str) -> None:
    """Copy the pending writes (and their tasks) of the chosen checkpoints."""
    kept = f"SELECT pack_id(checkpoint_id) FROM checkpoints WHERE id IN ({chosen})"
    conn.execute(
        "INSERT INTO tasks (thread, checkpoint_id, task_id, task_path) "
        "SELECT :target, checkpoint_id, task_id, task_path FROM tasks "
        f"WHERE thread = :source AND (:upto IS NULL OR (checkpoint_id IN ({kept}) "
        # The fork point's own writes stay behind: its tasks run again, so a fork
        # never inherits a result (or a reviewer's decision) of its parent.
        "AND checkpoint_id <> pack_id(:upto))) "
        "ON CONFLICT DO NOTHING",
        names,
    )
    conn.execute(
        "INSERT INTO writes (task, idx, channel, blob) "
        "SELECT d.id, w.idx, w.channel, w.blob FROM writes w JOIN tasks s ON s.id = w.task "
        "JOIN tasks d ON d.thread = :target AND d.checkpoint_id = s.checkpoint_id "
        "AND d.task_id = s.task_id WHERE s.thread = :source ON CONFLICT DO NOTHING",
        names,
    )
