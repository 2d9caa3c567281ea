"""How the feature store opens its catalog (read-write, or read-only where the cache cannot be
written), and the one place where SQLite and OS errors of the store become one-line errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BadInput, Unavailable

WRITABLE_HINT = "point SCENEBENCH_CACHE at a writable directory"
_NO_WRITE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def can_write(root: Path) -> bool:
    """Whether this process may create and replace files under the store directory ``root``
    (or create ``root`` itself, judged by its nearest existing parent), and rewrite its
    catalog if there is one. Read-only bind mounts and read-only file systems count as not
    writable, whoever the user is."""
    probe = root
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        return False
    catalog = root / "catalog.sqlite"
    return not catalog.exists() or os.access(catalog, os.W_OK)


def read_only_error(root: Path) -> Unavailable:
    """The error for a write to a store opened read-only."""
    return Unavailable(f"the feature store at {root} is read-only and this needs to add to it; "
                       f"{WRITABLE_HINT} (what is already indexed there can be searched read-only)")


def damaged_error(catalog: Path, exc: BaseException) -> BadInput:
    return BadInput(f"the feature store catalog {catalog} is damaged or not a SQLite database "
                    f"({exc}); move it aside (mv {catalog} {catalog}.broken) and rerun: "
                    "it is rebuilt and the features are computed again")


@contextlib.contextmanager
def store_errors(root: Path) -> Iterator[None]:
    """Turn the SQLite and OS errors of reading or writing the store at ``root`` into
    :class:`Unavailable` (cannot write here, disk full, locked) or :class:`BadInput` (a
    catalog that is not a database), each one line naming the path and what to do."""
    catalog = root / "catalog.sqlite"
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            raise Unavailable(f"cannot write the feature store catalog {catalog} ({exc}); "
                              f"{WRITABLE_HINT}") from None
        if "locked" in text or "busy" in text:
            raise Unavailable(f"the feature store catalog {catalog} stayed locked by another "
                              f"process ({exc}); wait for it to finish, or {WRITABLE_HINT}") from None
        if "malformed" in text or "not a database" in text:
            raise damaged_error(catalog, exc) from None
        raise Unavailable(f"the feature store catalog {catalog} cannot be used ({exc}); "
                          f"{WRITABLE_HINT}") from None
    except sqlite3.DatabaseError as exc:
        raise damaged_error(catalog, exc) from None
    except OSError as exc:
        where = exc.filename or root
        if exc.errno in _NO_WRITE_ERRNOS:
            raise Unavailable(f"cannot write the feature store at {where} ({exc.strerror}); "
                              f"{WRITABLE_HINT}") from None
        if exc.errno == errno.ENOSPC:
            raise Unavailable(f"no space left for the feature store at {where}; free some space "
                              f"or {WRITABLE_HINT} on another disk") from None
        raise


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    video_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY, size INTEGER, probe TEXT, last_path TEXT);
CREATE TABLE IF NOT EXISTS extractors (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS artefacts (
    video_id TEXT NOT NULL, extractor TEXT NOT NULL, status TEXT NOT NULL,
    kind TEXT, relpath TEXT, arrays TEXT, nbytes INTEGER, sha256 TEXT, meta TEXT,
    reason TEXT,
    PRIMARY KEY (video_id, extractor));
"""


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(target, timeout=60.0, isolation_level=None, check_same_thread=False,
                           uri=uri)
    conn.row_factory = sqlite3.Row
    return conn


def open_catalog(catalog: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection to ``catalog``: read-write in WAL mode with the schema created, or, with
    ``read_only``, a connection that never writes (an empty in-memory catalog when there is
    none yet, so every lookup finds nothing). Call inside :func:`store_errors`."""
    if not read_only:
        conn = _connect(str(catalog))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        conn.executescript(SCHEMA)
        return conn
    if catalog.is_file():
        uri = catalog.resolve().as_uri()
        # Plain read-only mode still needs the WAL index beside the catalog, which a read-only
        # directory cannot hold once the last writer has gone; then the catalog cannot change
        # under us either, and SQLite may read it as immutable.
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            opened: sqlite3.Connection | None = None
            try:
                conn = opened = _connect(uri + query, uri=True)
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            except sqlite3.OperationalError:
                if opened is not None:
                    opened.close()
                if query.endswith("immutable=1"):
                    raise
                continue
            if {"meta", "files", "videos", "extractors", "artefacts"} <= tables:
                conn.execute("PRAGMA query_only=ON")
                return conn
            conn.close()
            break  # an empty or foreign database: nothing indexed to serve
    conn = _connect(":memory:")
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA query_only=ON")
    return conn
