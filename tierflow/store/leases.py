"""One owner per thread: a lease in the run store, renewed while its run lives.

`run` and `resume` hold the thread's lease for as long as they execute it. A second
process asking for a held lease gets `ThreadBusy` naming the holder. A lease is free
again when its holder releases it, when it expires (the holder stopped renewing: it
died, or hangs), or — on the holder's own machine — as soon as the holder's process is
gone, so a SIGKILLed run resumes at once instead of after the expiry.

The claim is a read-then-write inside one serialised write transaction
(`database.py`), so two processes racing for one lease can't both win. Expiry compares
wall clocks: machines sharing a Postgres store need synchronised clocks (NTP), by a
margin well under the lease's time to live.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tierflow.errors import CheckpointError, ThreadBusy
from tierflow.store.database import PostgresDatabase, SqliteDatabase

TTL_S = 30.0  # a lease not renewed for this long is free
Clock = Callable[[], float]


def _machine() -> str:
    """This machine *and* process namespace: a pid means the same process only where
    both agree (containers on one host have their own pids)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{boot}/{namespace}"


MACHINE = _machine()


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lease: `machine`, process `pid`, and a token per claim."""

    token: str
    machine: str
    pid: int
    expires_at: float

    @property
    def name(self) -> str:
        return f"pid {self.pid} on {self.machine.split('/')[0]}"

    def stale(self, now: float) -> bool:
        if self.expires_at < now:
            return True
        return self.machine == MACHINE and not process_alive(self.pid)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


Db = SqliteDatabase | PostgresDatabase


def current(db: Db, thread: str) -> Holder | None:
    with db.transaction(write=False) as tx:
        row = tx.execute(
            "SELECT holder, host, pid, expires_at FROM leases WHERE thread = ?", [thread]
        ).fetchone()
    return None if row is None else Holder(row[0], row[1], int(row[2]), float(row[3]))


def claim(db: Db, thread: str, *, ttl: float = TTL_S, clock: Clock = time.time) -> Holder:
    """Take `thread`'s lease, or raise `ThreadBusy` naming its live holder."""
    mine = Holder(uuid.uuid4().hex, MACHINE, os.getpid(), clock() + ttl)
    with db.transaction(write=True) as tx:
        row = tx.execute(
            "SELECT holder, host, pid, expires_at FROM leases WHERE thread = ?", [thread]
        ).fetchone()
        if row is not None:
            held = Holder(row[0], row[1], int(row[2]), float(row[3]))
            if not held.stale(clock()):
                raise ThreadBusy(thread, held.name, _iso(held.expires_at))
        tx.execute(
            "INSERT INTO leases (thread, holder, host, pid, acquired_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (thread) DO UPDATE SET "
            "holder = excluded.holder, host = excluded.host, pid = excluded.pid, "
            "acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
            [thread, mine.token, mine.machine, mine.pid, _iso(clock()), mine.expires_at],
        )
    return mine


def renew(
    db: Db, thread: str, mine: Holder, *, ttl: float = TTL_S, clock: Clock = time.time
) -> bool:
    """Push the lease's expiry on; False if it is no longer ours (it expired and
    another process took it)."""
    with db.transaction(write=True) as tx:
        cursor = tx.execute(
            "UPDATE leases SET expires_at = ? WHERE thread = ? AND holder = ?",
            [clock() + ttl, thread, mine.token],
        )
        return cursor.rowcount > 0


def release(db: Db, thread: str, mine: Holder) -> None:
    with db.transaction(write=True) as tx:
        tx.execute("DELETE FROM leases WHERE thread = ? AND holder = ?", [thread, mine.token])


def live_threads(db: Db, *, clock: Clock = time.time) -> set[str]:
    """The threads whose lease a live process holds now."""
    with db.transaction(write=False) as tx:
        rows = tx.execute("SELECT thread, holder, host, pid, expires_at FROM leases").fetchall()
    now = clock()
    return {
        row[0] for row in rows if not Holder(row[1], row[2], int(row[3]), float(row[4])).stale(now)
    }


@contextmanager
def held(db: Db, thread: str, *, ttl: float = TTL_S) -> Iterator[Holder]:
    """Hold `thread`'s lease for the block, renewed every third of `ttl` by a daemon
    thread, released at the end (also on an exception)."""
    mine = claim(db, thread, ttl=ttl)
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(ttl / 3):
            try:
                if not renew(db, thread, mine, ttl=ttl):
                    return
            except CheckpointError:  # the store is busy or away: try again next time
                continue

    renewer = threading.Thread(target=keep, name=f"lease:{thread}", daemon=True)
    renewer.start()
    try:
        yield mine
    finally:
        stop.set()
        renewer.join()
        release(db, thread, mine)
