"""The feature store: a SQLite catalog (WAL) of videos, extractors and artefacts, plus one
array (``.npz``) or JSON file per (video, extractor), written atomically.

A row is marked done only after its file is fsynced and renamed into place, and a done
row whose file is missing or does not match its recorded checksum is reset, never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.errors import BadInput
from bench.paths import cache_home
from bench.store.access import can_write, open_catalog, read_only_error, store_errors
from bench.store.artefacts import NAME_RE as _NAME_RE
from bench.store.artefacts import (
    Kind,
    Written,
    array_spec,
    canonical_json,
    checked_arrays,
    meta_json,
    write_artefact,
)
from bench.store.engines import EngineConfig
from bench.store.location import Location, sha256_file
from bench.video.probe import ProbeInfo

log = logging.getLogger("bench")

Status = Literal["done", "failed", "missing"]

CATALOG_VERSION = 1
# A machine path in extractor parameters would make the cache key differ between machines.
_MACHINE_PATH_RE = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\|local-dir:)")

def _check_no_machine_paths(value: Any, where: str) -> None:
    if isinstance(value, str) and _MACHINE_PATH_RE.match(value):
        raise BadInput(
            f"extractor parameter {where} = {value!r} is a machine path; cache keys must be the "
            "same on every machine: use a model id, revision or weights checksum instead")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_no_machine_paths(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_no_machine_paths(v, f"{where}[{i}]")


@dataclass(frozen=True)
class Extractor:
    """What produced an artefact: a name, its JSON-able parameters and a code version.

    ``params`` should pin everything that changes the output (model id and revision or
    weights checksum, fps, size, dtype, ...), never wall-clock times or machine paths.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    version: str = "1"

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise BadInput(f"extractor name {self.name!r} must be letters, digits, '.', '_' or '-'")
        try:
            canonical_json(dict(self.params))
        except (TypeError, ValueError) as exc:
            raise BadInput(f"extractor {self.name!r}: params must be JSON-able ({exc})") from None
        _check_no_machine_paths(dict(self.params), "params")

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "params": json.loads(canonical_json(dict(self.params))),
                "version": str(self.version)}

    @property
    def key(self) -> str:
        """``"<name>-<16 hex of sha256(canonical JSON of name, params, version)>"``."""
        digest = hashlib.sha256(canonical_json(self.spec()).encode("utf-8")).hexdigest()
        return f"{self.name}-{digest[:16]}"

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Extractor) and self.key == other.key


class FeatureStore:
    """Cached, resumable per-video features.

    Layout under ``root``: ``catalog.sqlite`` (WAL), ``features/<extractor key>/<video id>.npz``
    (or ``.json``), ``artifacts/<name>/`` for corpus-level artefacts. Safe to share between
    processes (SQLite locking) and threads (one connection behind a lock per process).

    ``artefacts`` moves the ``features/`` files elsewhere: a directory every node of a
    cluster mounts, or an fsspec URL (``s3://bucket/prefix``); default ``$SCENEBENCH_ARTEFACTS``,
    else ``root``. The catalog stays in ``root``.
    """

    def __init__(self, root: Path | None = None, artefacts: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_home() / "store"
        self.location = Location(artefacts or os.environ.get("SCENEBENCH_ARTEFACTS") or self.root)
        """Where the artefact files are (see :mod:`bench.store.location`)."""
        self.catalog_path = self.root / "catalog.sqlite"
        self.read_only = not can_write(self.root)
        """True where the cache cannot be written (a read-only mount, another user's cache):
        what is indexed there is served, and anything that must be written fails with one
        line saying so."""
        self.engine = EngineConfig()
        """How :func:`~bench.store.index_videos` computes missing features for this store
        (the workspace's choice; the catalog is written by this process either way)."""
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        if self.read_only:
            log.info("feature store %s is read-only: serving what is indexed there", self.root)
            with self._lock, store_errors(self.root):
                self._connect()
            return
        with store_errors(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('catalog_version', ?)", (str(CATALOG_VERSION),))

    # -- catalog plumbing -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross fork(); reopen in a child process.
        if self._conn is None or self._pid != os.getpid():
            self._conn = open_catalog(self.catalog_path, read_only=self.read_only)
            self._pid = os.getpid()
        return self._conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front, so two
        processes never deadlock upgrading read locks)."""
        if self.read_only:
            raise read_only_error(self.root)
        with self._lock, store_errors(self.root):
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock, store_errors(self.root):
            return self._connect().execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- videos -----------------------------------------------------------------------------

    def video_id(self, path: Path) -> str:
        """Content id of a video file: the first 32 hex digits of the sha256 of its bytes.

        Memoised by (resolved path, size, mtime_ns), so a re-run does not re-hash; the same
        bytes under another path get the same id. BadInput when the file does not exist.
        """
        path = Path(path)
        try:
            resolved = path.resolve(strict=True)
            st = resolved.stat()
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
            raise BadInput(f"{path}: file not found") from None
        if not resolved.is_file():
            raise BadInput(f"{path}: not a file")
        rows = self._query("SELECT video_id FROM files WHERE path=? AND size=? AND mtime_ns=?",
                           (str(resolved), st.st_size, st.st_mtime_ns))
        if rows:
            return str(rows[0]["video_id"])
        vid = sha256_file(resolved)[:32]
        if self.read_only:  # the memo is only a shortcut; a read-only store serves without it
            return vid
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                       (str(resolved), st.st_size, st.st_mtime_ns, vid))
            db.execute("INSERT OR IGNORE INTO videos (video_id, size) VALUES (?, ?)", (vid, st.st_size))
            db.execute("UPDATE videos SET last_path=? WHERE video_id=?", (str(resolved), vid))
        return vid

    def record_probe(self, video_id: str, info: ProbeInfo) -> None:
        """Store ``info`` for ``video_id`` (the latest probe wins)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO videos (video_id) VALUES (?)", (video_id,))
            db.execute("UPDATE videos SET probe=? WHERE video_id=?",
                       (canonical_json(info.to_dict()), video_id))

    def get_probe(self, video_id: str) -> dict[str, Any] | None:
        """The recorded :meth:`ProbeInfo.to_dict`, or None if never probed."""
        rows = self._query("SELECT probe FROM videos WHERE video_id=?", (video_id,))
        if not rows or rows[0]["probe"] is None:
            return None
        return dict(json.loads(rows[0]["probe"]))

    def videos(self) -> list[dict[str, Any]]:
        """One dict per known video: ``video_id``, ``size``, ``last_path``, ``paths``,
        ``probe`` (dict or None), ``done`` and ``failed`` (artefact counts)."""
        rows = self._query(
            "SELECT v.video_id, v.size, v.probe, v.last_path, "
            "SUM(a.status='done') AS done, SUM(a.status='failed') AS failed "
            "FROM videos v LEFT JOIN artefacts a ON a.video_id = v.video_id "
            "GROUP BY v.video_id ORDER BY v.video_id")
        paths: dict[str, list[str]] = {}
        for r in self._query("SELECT video_id, path FROM files ORDER BY path"):
            paths.setdefault(r["video_id"], []).append(r["path"])
        return [{"video_id": r["video_id"], "size": r["size"], "last_path": r["last_path"],
                 "paths": paths.get(r["video_id"], []),
                 "probe": json.loads(r["probe"]) if r["probe"] else None,
                 "done": int(r["done"] or 0), "failed": int(r["failed"] or 0)} for r in rows]

    # -- artefacts --------------------------------------------------------------------------

    def _row(self, video_id: str, ex: Extractor) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM artefacts WHERE video_id=? AND extractor=?", (video_id, ex.key))
        return rows[0] if rows else None

    def status(self, video_id: str, ex: Extractor) -> Status:
        """``"done"`` (file present with its recorded size), ``"failed"`` or ``"missing"``.

        A done row whose file has gone or changed size is reset to missing here; the full
        checksum is checked by :meth:`load` / :meth:`load_json`.
        """
        row = self._row(video_id, ex)
        if row is None:
            return "missing"
        if row["status"] == "failed":
            return "failed"
        if row["status"] != "done":
            return "missing"
        where = self.location.describe(row["relpath"])
        try:
            size = self.location.size(row["relpath"])
        except OSError:
            self._reset(video_id, ex, f"{where} is missing")
            return "missing"
        if size != row["nbytes"]:
            self._reset(video_id, ex, f"{where} has {size} bytes, expected {row['nbytes']}")
            return "missing"
        return "done"

    def _reset(self, video_id: str, ex: Extractor, why: str) -> None:
        if self.read_only:
            log.warning("feature store: %s for video %s is unusable (%s) and the store is "
                        "read-only", ex.key, video_id, why)
            return
        log.warning("feature store: discarding %s for video %s: %s; it will be recomputed",
                    ex.key, video_id, why)
        with self._tx() as db:
            db.execute("DELETE FROM artefacts WHERE video_id=? AND extractor=?", (video_id, ex.key))

    def register(self, video_id: str, ex: Extractor, written: Written) -> None:
        """Mark (video, extractor) done with a file already published at :attr:`location`
        (by this process or by a worker that shares it), replacing what was there. BadInput
        when the file is not there with the size the writer saw."""
        if self.read_only:
            raise read_only_error(self.root)
        target = self.location.describe(written.relpath)
        try:
            size = self.location.size(written.relpath)
        except OSError:
            raise BadInput(f"{ex.key} for video {video_id}: the written artefact {target} is not "
                           "where this store keeps artefacts (is it shared with the workers?)") from None
        if size != written.nbytes:
            raise BadInput(f"{ex.key} for video {video_id}: {target} has {size} bytes, the writer "
                           f"wrote {written.nbytes}")
        with self._tx() as db:
            old = db.execute("SELECT relpath FROM artefacts WHERE video_id=? AND extractor=?",
                             (video_id, ex.key)).fetchone()
            self._register(db, video_id, ex)
            db.execute(
                "INSERT OR REPLACE INTO artefacts VALUES (?, ?, 'done', ?, ?, ?, ?, ?, ?, NULL)",
                (video_id, ex.key, written.kind, written.relpath,
                 None if written.arrays is None else canonical_json(written.arrays),
                 written.nbytes, written.sha256, written.meta_json))
        if old is not None and old["relpath"] and old["relpath"] != written.relpath:
            self._unlink(old["relpath"])

    def _commit(self, video_id: str, ex: Extractor, kind: Kind, out: Any,
                meta: Mapping[str, Any] | None) -> None:
        if self.read_only:
            # bad arrays or meta are bad input wherever they would be written
            if kind == "npz":
                checked_arrays(ex.key, out)
            meta_json(ex.key, meta)
            raise read_only_error(self.root)
        with store_errors(self.root):
            written = write_artefact(self.location, video_id, ex.key, kind, out, meta)
        self.register(video_id, ex, written)

    @staticmethod
    def _register(db: sqlite3.Connection, video_id: str, ex: Extractor) -> None:
        db.execute("INSERT OR IGNORE INTO extractors VALUES (?, ?, ?, ?)",
                   (ex.key, ex.name, str(ex.version), canonical_json(ex.spec()["params"])))
        db.execute("INSERT OR IGNORE INTO videos (video_id) VALUES (?)", (video_id,))

    def save(self, video_id: str, ex: Extractor, arrays: Mapping[str, np.ndarray],
             meta: Mapping[str, Any] | None = None) -> None:
        """Store named arrays (numeric, bool or fixed-width string dtypes, any shape) and
        JSON-able ``meta`` for (video, extractor), replacing what was there.

        The ``.npz`` goes to a temp file in the same directory, is fsynced and renamed; only
        then is the row marked done, in one transaction, with each array's shape and dtype,
        the byte count and the file's sha256. Memory stays at the arrays themselves.
        """
        self._commit(video_id, ex, "npz", arrays, meta)

    def save_json(self, video_id: str, ex: Extractor, obj: Any,
                  meta: Mapping[str, Any] | None = None) -> None:
        """Store a JSON-able object (e.g. timestamped text segments) with the same atomicity
        and checksum as :meth:`save`."""
        self._commit(video_id, ex, "json", obj, meta)

    def _verified_path(self, video_id: str, ex: Extractor, kind: str) -> tuple[str, sqlite3.Row] | None:
        """The file (relative path) of a done artefact after checking its size and sha256,
        else None (a damaged file is deleted and its row reset so it is recomputed)."""
        row = self._row(video_id, ex)
        if row is None or row["status"] != "done":
            return None
        if row["kind"] != kind:
            other = "load_json" if row["kind"] == "json" else "load"
            raise BadInput(f"{ex.key} for video {video_id} was stored as {row['kind']}; use {other}()")
        rel = row["relpath"]
        target = self.location.describe(rel)
        try:
            size = self.location.size(rel)
            ok = size == row["nbytes"] and self.location.sha256(rel) == row["sha256"]
        except OSError:
            self._reset(video_id, ex, f"{target} is missing")
            return None
        if not ok:
            self._reset(video_id, ex, f"{target} does not match its checksum (truncated or changed)")
            if not self.read_only:
                self._unlink(rel)
            return None
        return rel, row

    def load(self, video_id: str, ex: Extractor) -> dict[str, np.ndarray] | None:
        """The arrays saved for (video, extractor), or None when not computed (missing or
        failed: :meth:`status` and :meth:`failure` tell which). A damaged file is reset to
        missing and logged, never served."""
        found = self._verified_path(video_id, ex, "npz")
        if found is None:
            return None
        rel, row = found
        target = self.location.describe(rel)
        expected = json.loads(row["arrays"]) if row["arrays"] else {}
        try:
            with self.location.open(rel) as fh, np.load(fh, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except OSError:
            current = self._row(video_id, ex)
            if current is not None and current["relpath"] != row["relpath"]:
                return self.load(video_id, ex)  # a concurrent writer replaced it meanwhile
            self._reset(video_id, ex, f"{target} vanished while being read")
            return None
        except (ValueError, zipfile.BadZipFile) as exc:
            self._reset(video_id, ex, f"{target} cannot be read ({exc})")
            return None
        if array_spec(arrays) != expected:
            self._reset(video_id, ex, "stored arrays do not match their recorded shapes/dtypes")
            return None
        return arrays

    def load_json(self, video_id: str, ex: Extractor) -> Any | None:
        """The object saved with :meth:`save_json`, or None when not computed."""
        found = self._verified_path(video_id, ex, "json")
        if found is None:
            return None
        try:
            data = self.location.read_bytes(found[0])
        except OSError:
            current = self._row(video_id, ex)
            if current is not None and current["relpath"] != found[1]["relpath"]:
                return self.load_json(video_id, ex)  # a concurrent writer replaced it meanwhile
            self._reset(video_id, ex, f"{self.location.describe(found[0])} vanished while being read")
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError as exc:  # registered bytes that are not UTF-8 JSON: never served
            where = self.location.describe(found[0])
            self._reset(video_id, ex, f"{where} is not JSON ({type(exc).__name__})")
            return None

    def load_meta(self, video_id: str, ex: Extractor) -> dict[str, Any] | None:
        """The ``meta`` saved with a done artefact, or None when not computed."""
        row = self._row(video_id, ex)
        if row is None or row["status"] != "done":
            return None
        return dict(json.loads(row["meta"] or "{}"))

    def mark_failed(self, video_id: str, ex: Extractor, reason: str) -> None:
        """Record that ``ex`` cannot be computed for the video, and why (one line)."""
        line = " ".join(str(reason).split())[:500] or "unknown reason"
        with self._tx() as db:
            old = db.execute("SELECT relpath FROM artefacts WHERE video_id=? AND extractor=?",
                             (video_id, ex.key)).fetchone()
            self._register(db, video_id, ex)
            db.execute("INSERT OR REPLACE INTO artefacts (video_id, extractor, status, reason) "
                       "VALUES (?, ?, 'failed', ?)", (video_id, ex.key, line))
        if old is not None and old["relpath"]:
            self._unlink(old["relpath"])

    def failure(self, video_id: str, ex: Extractor) -> str | None:
        """The recorded reason if (video, extractor) failed, else None."""
        row = self._row(video_id, ex)
        return str(row["reason"]) if row is not None and row["status"] == "failed" else None

    def prune(self, older_than_s: float = 3600.0) -> int:
        """Delete artefact files no done row points to (left by a run killed between the
        rename and the catalog commit, or by a replaced artefact) and stale temp files;
        return how many. Only files older than ``older_than_s`` go, so a concurrent
        writer's file that is about to be committed is left alone."""
        referenced = {r["relpath"] for r in self._query(
            "SELECT relpath FROM artefacts WHERE status='done' AND relpath IS NOT NULL")}
        cutoff = time.time() - older_than_s
        removed = 0
        for rel, mtime in list(self.location.files("features")):
            if rel not in referenced and mtime < cutoff:
                with contextlib.suppress(OSError):
                    self.location.unlink(rel)
                    removed += 1
        return removed

    def _unlink(self, rel: str) -> None:
        with contextlib.suppress(OSError):
            self.location.unlink(rel)

    def artifact_dir(self, name: str) -> Path:
        """``root/artifacts/<name>`` (created, unless the store is read-only) for corpus-level
        artefacts such as a vector index; ``name`` is one or more safe path segments
        (``"clip/ivf-abc"``). Callers skip saving an artefact when :attr:`read_only`."""
        parts = name.split("/")
        if not name or not all(_NAME_RE.match(p) for p in parts):
            raise BadInput(f"artifact name {name!r} must be '/'-separated segments of letters, "
                           "digits, '.', '_' or '-' (no '..')")
        path = self.root.joinpath("artifacts", *parts)
        if not self.read_only:
            with store_errors(self.root):
                path.mkdir(parents=True, exist_ok=True)
        return path
