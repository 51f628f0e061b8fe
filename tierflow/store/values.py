"""Channel values: stored once per version, lists as deltas on an earlier version.

A row of `channel_values` is one of:

- `PLAIN`: the value is the one blob in `segments`;
- `LIST`: the value is the first `prefix` items of the `base` row's list, followed by
  the items of each blob in `segments` (each blob holds a list);
- `EMPTY`: the channel has no value at this version.

So an append-only channel like `messages` costs the new messages per step, not the
whole history again. The tail is cut along the parent checkpoint's writes to the same
channel, so a segment is often byte-for-byte a write the node made, and `blobs` stores
it once for both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from langgraph.checkpoint.serde.base import SerializerProtocol

from tierflow.errors import CheckpointError
from tierflow.store import blobs
from tierflow.store.blobs import Blob

PLAIN, LIST, EMPTY = 0, 1, 2


class Base(NamedTuple):
    """A stored list version a new version can extend: its row and a copy of its items."""

    version: str
    row: int
    items: list[Any]


@dataclass
class Planned:
    """A channel value encoded for storage, before it has a row."""

    channel: str
    version: str
    value: Any
    kind: int
    base: Base | None = None
    prefix: int = 0
    segments: list[Blob] = field(default_factory=list)


MISSING = object()


def plan(
    serde: SerializerProtocol,
    channel: str,
    version: str,
    value: Any,
    *,
    base: Base | None,
    writes: Sequence[Any] = (),
) -> Planned:
    """Encode `value`; a list as a delta on `base` when `base` is a prefix of it.

    `writes` are the values the parent checkpoint's tasks wrote to this channel, in
    the order LangGraph applied them."""
    if value is MISSING:
        return Planned(channel, version, value, EMPTY)
    if type(value) is not list:
        return Planned(channel, version, value, PLAIN, segments=[blobs.encode(serde, value)])
    prefix = _common_prefix(value, base.items) if base is not None else 0
    tail = value[prefix:]
    segments = [blobs.encode(serde, part) for part in _split(tail, writes)]
    return Planned(channel, version, value, LIST, base if prefix else None, prefix, segments)


def _common_prefix(value: list[Any], items: list[Any]) -> int:
    # The usual case, a pure append, is one C-level comparison (identity first).
    if len(value) >= len(items) and value[: len(items)] == items:
        return len(items)
    for index, (new, old) in enumerate(zip(value, items, strict=False)):
        if new is not old and new != old:
            return index
    return min(len(value), len(items))


def _split(tail: list[Any], writes: Sequence[Any]) -> list[list[Any]]:
    """Cut `tail` into the write lists it is made of (same objects), then single items."""
    parts: list[list[Any]] = []
    position = 0
    for written in writes:
        end = position + len(written) if type(written) is list else -1
        if not written or end < 0 or end > len(tail):
            break
        if any(a is not b for a, b in zip(tail[position:end], written, strict=True)):
            break
        parts.append(written)
        position = end
    # The rest, item by item: a node's write is most often a list of one message, and
    # then this piece is that write byte for byte, even when the write arrives after the
    # checkpoint (LangGraph saves task writes on background threads).
    parts.extend([item] for item in tail[position:])
    return parts


def still_stored(conn: sqlite3.Connection, thread: int, channel: str, base: Base) -> bool:
    """Whether `base`'s row is still the stored value of that version (another process
    may have pruned it since this one cached it)."""
    row = conn.execute(
        "SELECT 1 FROM channel_values WHERE id = ? AND thread = ? AND channel = ? AND version = ?",
        (base.row, thread, channel, base.version),
    ).fetchone()
    return row is not None


def put(conn: sqlite3.Connection, thread: int, planned: Planned) -> int:
    """Insert `planned` as the value of its version (unless stored already); its row id."""
    segment_ids = [blobs.put(conn, blob) for blob in planned.segments]
    return blobs.insert_id(
        conn,
        "INSERT INTO channel_values (thread, channel, version, kind, base, prefix, segments) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (thread, channel, version) DO NOTHING",
        (
            thread,
            planned.channel,
            planned.version,
            planned.kind,
            planned.base.row if planned.base else None,
            planned.prefix if planned.kind == LIST else None,
            blobs.pack_ids(segment_ids) if planned.kind != EMPTY else None,
        ),
        "SELECT id FROM channel_values WHERE thread = ? AND channel = ? AND version = ?",
        (thread, planned.channel, planned.version),
    )


class Row(NamedTuple):
    kind: int
    base: int | None
    prefix: int
    segments: list[int]


class Loader:
    """Rebuilds channel values from rows, remembering what it decoded.

    One loader serves one read (a `get_tuple`, or all pages of a `list`): the versions
    of a list channel along a thread are prefixes of one another, so each row and blob
    is read and decoded once, and each version is a slice of a list built once."""

    def __init__(self, conn: sqlite3.Connection, serde: SerializerProtocol) -> None:
        self.conn = conn
        self.serde = serde
        self.rows: dict[int, Row] = {}
        self.raw: dict[int, tuple[str, bytes]] = {}
        self.items: dict[int, list[Any]] = {}
        # For each list row: the list its value is a prefix of, and its length.
        self.lists: dict[int, tuple[list[Any], int]] = {}

    def load(
        self, thread: int, versions: Mapping[str, str]
    ) -> tuple[dict[str, Any], dict[str, int]]:
        """The values of `versions` ({channel: version}), and the row of each list value."""
        if not versions:
            return {}, {}
        pairs = list(versions.items())
        marks = ",".join(["(?, ?)"] * len(pairs))
        # A join from the wanted pairs, so each is one index lookup (a row-value `IN`
        # would scan the thread's values).
        query = (
            f"WITH wanted(channel, version) AS (VALUES {marks}) "
            "SELECT v.channel, v.id, v.kind, v.base, v.prefix, v.segments FROM wanted "
            "JOIN channel_values v ON v.thread = ? AND v.channel = wanted.channel "
            "AND v.version = wanted.version"
        )
        params: list[Any] = []
        for channel, version in pairs:
            params += [channel, version]
        params.append(thread)
        found: dict[str, int] = {}
        for channel, row_id, kind, base, prefix, segments in self.conn.execute(query, params):
            self.rows[row_id] = Row(kind, base, prefix or 0, blobs.unpack_ids(segments))
            found[channel] = row_id
        self._fetch_chains([row for row in found.values() if self.rows[row].base is not None])
        self._fetch_blobs(found.values())
        values: dict[str, Any] = {}
        list_rows: dict[str, int] = {}
        for channel, row_id in found.items():
            row = self.rows[row_id]
            if row.kind == PLAIN:
                values[channel] = self._plain(row.segments[0])
            elif row.kind == LIST:
                values[channel] = self._list(row_id)
                list_rows[channel] = row_id
        return values, list_rows

    def _fetch_chains(self, heads: list[int]) -> None:
        for head in heads:
            start = self.rows[head].base
            if start is None or start in self.rows:
                continue
            query = (
                # UNION, not UNION ALL: a damaged file with a cycle of bases ends the walk.
                "WITH RECURSIVE chain(id) AS (SELECT ? UNION "
                "SELECT v.base FROM channel_values v JOIN chain ON v.id = chain.id "
                "WHERE v.base IS NOT NULL) "
                "SELECT v.id, v.kind, v.base, v.prefix, v.segments "
                "FROM channel_values v JOIN chain ON v.id = chain.id"
            )
            for row_id, kind, base, prefix, segments in self.conn.execute(query, (start,)):
                self.rows.setdefault(
                    row_id, Row(kind, base, prefix or 0, blobs.unpack_ids(segments))
                )

    def _fetch_blobs(self, heads: Iterable[int]) -> None:
        wanted: set[int] = set()
        for head in heads:
            row_id: int | None = head
            visited: set[int] = set()
            while row_id in self.rows and row_id not in self.lists and row_id not in visited:
                visited.add(row_id)
                row = self.rows[row_id]
                wanted.update(s for s in row.segments if s not in self.raw)
                row_id = row.base if row.kind == LIST else None
        self.raw.update(blobs.load(self.conn, wanted))

    def _plain(self, blob_id: int) -> Any:
        # Decoded afresh for each checkpoint, so no two checkpoints share a mutable value.
        return self.serde.loads_typed(self.raw[blob_id])

    def _segment(self, blob_id: int) -> list[Any]:
        if blob_id not in self.items:
            self.items[blob_id] = list(self.serde.loads_typed(self.raw[blob_id]))
        return self.items[blob_id]

    def _list(self, head: int) -> list[Any]:
        if head not in self.lists:
            self._build(head)
        owner, length = self.lists[head]
        return owner[:length]

    def _build(self, head: int) -> None:
        chain: list[int] = []
        visited: set[int] = set()
        row_id: int | None = head
        while row_id is not None and row_id not in self.lists:
            if row_id not in self.rows or row_id in visited:
                raise CheckpointError(f"channel value {head} lost the version {row_id} it extends")
            chain.append(row_id)
            visited.add(row_id)
            row_id = self.rows[row_id].base
        if row_id is None:
            current: list[Any] = []
        else:
            owner, length = self.lists[row_id]
            current = owner[:length]
        pending: list[tuple[int, int]] = []
        for row_id in reversed(chain):
            row = self.rows[row_id]
            if row.prefix < len(current):
                # A version that drops items: the versions before it keep the old list.
                self.lists.update((done, (current, n)) for done, n in pending)
                pending = []
                current = current[: row.prefix]
            for segment in row.segments:
                current.extend(self._segment(segment))
            pending.append((row_id, len(current)))
        self.lists.update((done, (current, n)) for done, n in pending)
