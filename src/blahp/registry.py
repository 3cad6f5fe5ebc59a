"""The submission registry: one small SQLite file per user and host (backends.md §5.1).

It makes submission idempotent (a row is committed *before* the batch submit command runs) and
keeps the bookkeeping that must survive a restart: when a job was submitted, the last status we
answered, when it first went missing, and its final exit information once known.  It is a safety
net, not the source of truth: a lost registry costs idempotency for in-flight submits and grace
bookkeeping, nothing else.  Every method is blocking; callers run them in a worker thread.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from typing import Any, Dict, Iterable, List, Optional

SUBMITTING, SUBMITTED, FAILED, CANCELLED, FINAL = "submitting", "submitted", "failed", "cancelled", "final"
PURGE_AFTER = 7 * 86400

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    key TEXT,
    digest TEXT,
    blah_id TEXT,
    backend TEXT NOT NULL,
    cluster TEXT NOT NULL DEFAULT '',
    batch_id TEXT,
    state TEXT NOT NULL,
    owner_pid INTEGER,
    owner_host TEXT,
    lease_at REAL,
    submitted_at REAL,
    last_action_at REAL,
    last_status INTEGER,
    last_native TEXT,
    last_seen_at REAL,
    first_missing_at REAL,
    exit_json TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs(key);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(backend, cluster, batch_id);
"""

_COLUMNS = ("id", "key", "digest", "blah_id", "backend", "cluster", "batch_id", "state", "owner_pid",
            "owner_host", "lease_at", "submitted_at", "last_action_at", "last_status", "last_native",
            "last_seen_at", "first_missing_at", "exit_json", "updated_at")


class Row:
    __slots__ = _COLUMNS

    def __init__(self, values: Iterable[Any]) -> None:
        for k, v in zip(_COLUMNS, values):
            setattr(self, k, v)

    @property
    def exit_info(self) -> Optional[Dict[str, Any]]:
        return json.loads(self.exit_json) if self.exit_json else None

    def owner_alive(self, lease: float, now: Optional[float] = None) -> bool:
        """Is the process that wrote this ``submitting`` row still working on it?"""
        if self.owner_host != socket.gethostname() or not self.owner_pid:
            return False
        if (now or time.time()) - (self.lease_at or 0) > lease:
            return False
        try:
            os.kill(self.owner_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def __repr__(self) -> str:
        return "Row(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in _COLUMNS if getattr(self, k) is not None)


class Registry:
    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a read-modify-write is
        # atomic against other pyblahp processes of the same user.
        self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args: Iterable[Any]) -> Optional[Row]:
        with self._lock:
            r = self._db.execute(sql, tuple(args)).fetchone()
        return Row(r) if r else None

    def _write(self, sql: str, args: Iterable[Any]) -> int:
        with self._lock:
            cur = self._db.execute(sql, tuple(args))
            return cur.lastrowid if sql.lstrip().upper().startswith("INSERT") else cur.rowcount

    # -- submission ---------------------------------------------------------------------
    def latest_for_key(self, key: str) -> Optional[Row]:
        return self._one("SELECT * FROM jobs WHERE key = ? ORDER BY id DESC LIMIT 1", (key,))

    def begin_submit(self, key: str, digest: str, backend: str, cluster: Optional[str]) -> int:
        """Commit a ``submitting`` row for this process; the id is the handle for the outcome."""
        now = time.time()
        return self._write(
            "INSERT INTO jobs (key, digest, backend, cluster, state, owner_pid, owner_host, lease_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, digest, backend, cluster or "", SUBMITTING, os.getpid(), socket.gethostname(), now, now))

    def submitted(self, row_id: int, blah_id: str, batch_id: str, cluster: Optional[str],
                  submitted_at: Optional[float] = None) -> None:
        now = time.time()
        self._write("UPDATE jobs SET state = ?, blah_id = ?, batch_id = ?, cluster = ?, submitted_at = ?,"
                    " last_status = 1, owner_pid = NULL, updated_at = ? WHERE id = ?",
                    (SUBMITTED, blah_id, batch_id, cluster or "", submitted_at or now, now, row_id))

    def failed(self, row_id: int) -> None:
        self._write("UPDATE jobs SET state = ?, owner_pid = NULL, updated_at = ? WHERE id = ?",
                    (FAILED, time.time(), row_id))

    # -- status bookkeeping -------------------------------------------------------------
    def by_batch_id(self, backend: str, cluster: Optional[str], batch_id: str) -> Optional[Row]:
        return self._one("SELECT * FROM jobs WHERE backend = ? AND cluster = ? AND batch_id = ?"
                         " ORDER BY id DESC LIMIT 1", (backend, cluster or "", batch_id))

    def track(self, backend: str, cluster: Optional[str], batch_id: str, blah_id: str) -> Row:
        """The row of a job, created for ids we did not submit (minted by another blahpd)."""
        row = self.by_batch_id(backend, cluster, batch_id)
        if row is None:
            self._write("INSERT INTO jobs (blah_id, backend, cluster, batch_id, state, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)", (blah_id, backend, cluster or "", batch_id, SUBMITTED, time.time()))
            row = self.by_batch_id(backend, cluster, batch_id)
        return row

    def update(self, row_id: int, **fields: Any) -> None:
        if not fields:
            return
        bad = set(fields) - set(_COLUMNS)
        if bad:
            raise KeyError(sorted(bad))
        fields["updated_at"] = time.time()
        cols = ", ".join("%s = ?" % k for k in fields)
        self._write("UPDATE jobs SET %s WHERE id = ?" % cols, list(fields.values()) + [row_id])

    def finish(self, row_id: int, status: int, exit_info: Dict[str, Any]) -> None:
        self.update(row_id, state=FINAL, last_status=status, exit_json=json.dumps(exit_info, sort_keys=True))

    def live_rows(self, backend: str) -> List[Row]:
        """Jobs that may still be in the batch system (tracked again after a restart)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE backend = ? AND state IN (?, ?)"
                                    " AND batch_id IS NOT NULL", (backend, SUBMITTED, SUBMITTED)).fetchall()
        return [Row(r) for r in rows]

    def submitting_rows(self, backend: str) -> List[Row]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE backend = ? AND state = ?",
                                    (backend, SUBMITTING)).fetchall()
        return [Row(r) for r in rows]

    def purge(self, older_than: float = PURGE_AFTER) -> int:
        """Settled rows after a week; any row nothing has touched for 30 days (a job that
        vanished and that nobody asks about any more)."""
        now = time.time()
        return self._write("DELETE FROM jobs WHERE (state IN (?, ?, ?) AND updated_at < ?) OR updated_at < ?",
                           (FINAL, FAILED, CANCELLED, now - older_than, now - 30 * 86400))
