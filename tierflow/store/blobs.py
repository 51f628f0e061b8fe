"""Content-addressed blobs: each serialised value is stored once and referenced by id.

The hash covers the serialiser's type tag and the bytes, so equal values written twice
(a node's message write and the same message appended to `messages`; a thread and its
fork) share one row. Values are zlib-compressed when that makes them smaller.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import ormsgpack
from langgraph.checkpoint.serde.base import SerializerProtocol

COMPRESS_FROM = 64  # bytes; below this zlib's header costs more than it saves
PARAMS_PER_QUERY = 500


class Blob(NamedTuple):
    """A serialised value, ready to store."""

    hash: bytes
    type: str
    zlib: int
    data: bytes


def encode(serde: SerializerProtocol, value: Any) -> Blob:
    type_, data = serde.dumps_typed(value)
    digest = hashlib.blake2b(type_.encode() + b"\0" + data, digest_size=16).digest()
    if len(data) >= COMPRESS_FROM:
        packed = zlib.compress(data, 6)
        if len(packed) < len(data):
            return Blob(digest, type_, 1, packed)
    return Blob(digest, type_, 0, data)


# SQLite 3.35+ returns the new row's id from the INSERT itself: one statement for a new
# blob (most are new) instead of two; an equal blob already stored still needs the look.
_RETURNING = " RETURNING id" if sqlite3.sqlite_version_info >= (3, 35, 0) else ""


def insert_id(
    conn: sqlite3.Connection,
    insert: str,
    params: Sequence[Any],
    select: str,
    key: Sequence[Any],
) -> int:
    """The id of the row `insert` (an `INSERT … ON CONFLICT … DO NOTHING`) adds, or of
    the equal row `select` finds when there was one already."""
    inserted = conn.execute(insert + _RETURNING, params).fetchone()
    if inserted is not None:
        return int(inserted[0])
    return int(conn.execute(select, key).fetchone()[0])


def put(conn: sqlite3.Connection, blob: Blob) -> int:
    """The id of `blob`'s row, inserting it unless an equal one is stored."""
    return insert_id(
        conn,
        "INSERT INTO blobs (hash, type, zlib, data) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (hash) DO NOTHING",
        blob,
        "SELECT id FROM blobs WHERE hash = ?",
        (blob.hash,),
    )


def load(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, tuple[str, bytes]]:
    """The serialised values (type, bytes) of blob rows `ids`."""
    wanted = sorted(set(ids))
    found: dict[int, tuple[str, bytes]] = {}
    for start in range(0, len(wanted), PARAMS_PER_QUERY):
        chunk = wanted[start : start + PARAMS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT id, type, zlib, data FROM blobs WHERE id IN ({marks})"
        for blob_id, type_, packed, data in conn.execute(query, chunk):
            found[blob_id] = (type_, zlib.decompress(data) if packed else data)
    return found


def sizes(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, int]:
    """The stored (compressed) size of each blob in `ids`."""
    wanted = sorted(set(ids))
    found: dict[int, int] = {}
    for start in range(0, len(wanted), PARAMS_PER_QUERY):
        chunk = wanted[start : start + PARAMS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT id, length(data) FROM blobs WHERE id IN ({marks})"
        found.update(conn.execute(query, chunk).fetchall())
    return found


def pack_ids(ids: list[int]) -> bytes:
    return ormsgpack.packb(ids)


def unpack_ids(packed: bytes | None) -> list[int]:
    return list(ormsgpack.unpackb(packed)) if packed else []


def collect_garbage(conn: sqlite3.Connection) -> int:
    """Delete blobs no write and no channel value refers to; returns how many."""
    used = {blob_id for (blob_id,) in conn.execute("SELECT DISTINCT blob FROM writes")}
    for (segments,) in conn.execute("SELECT segments FROM channel_values"):
        used.update(unpack_ids(segments))
    stored = [blob_id for (blob_id,) in conn.execute("SELECT id FROM blobs")]
    garbage = [blob_id for blob_id in stored if blob_id not in used]
    delete_ids(conn, "DELETE FROM blobs WHERE id IN ({})", garbage)
    return len(garbage)


def delete_ids(conn: sqlite3.Connection, statement: str, ids: list[int]) -> None:
    """Run `statement` (with one `IN ({})` placeholder list) over `ids` in chunks."""
    for start in range(0, len(ids), PARAMS_PER_QUERY):
        chunk = ids[start : start + PARAMS_PER_QUERY]
        conn.execute(statement.format(",".join("?" * len(chunk))), chunk)
