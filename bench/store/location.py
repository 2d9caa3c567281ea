"""Where a feature store's artefact files live: the store's own directory (the default), a
directory every node mounts, or an object store reached through fsspec (``s3://bucket/prefix``,
``gs://...``, ``memory://...`` for tests). The SQLite catalog always stays in the store's local
root, and only the driver writes it; workers write artefact files here, and nothing else.

A file is written under a name that carries its content hash, so two writers of the same
artefact never replace a file a catalog row points to, and it is never seen half-written: a
local file goes to a temp file in the same directory, is fsynced and renamed; an object is
uploaded in one request (an object store makes it visible whole or not at all).
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from bench.errors import BadInput, Unavailable
from bench.fsio import fsync_dir, temp_file


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (memory stays flat for any size)."""
    with Path(path).open("rb") as fh:
        return sha256_stream(fh)


def sha256_stream(fh: BinaryIO) -> str:
    """Hex sha256 of what is left to read in ``fh``, in 1 MiB chunks."""
    h = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def is_url(where: str | Path) -> bool:
    """True for ``scheme://...`` other than ``file://`` (a local directory)."""
    text = str(where)
    return "://" in text and not text.startswith("file://")


class Location:
    """Artefact files under ``where``: a local directory (a path or ``file://`` URL) or an fsspec
    URL. Paths given to the methods are relative, posix (``features/<extractor>/<name>``)."""

    def __init__(self, where: str | Path) -> None:
        self.where = str(where)
        self.fs: Any = None
        if is_url(where):
            try:
                import fsspec
            except ImportError:
                raise Unavailable(f"artefacts at {self.where} need fsspec: pip install 'scenebench[ray]' "
                                  "(and the filesystem's package, e.g. s3fs for s3://)") from None
            try:
                self.fs, base = fsspec.core.url_to_fs(self.where)
            except (ImportError, ValueError) as exc:
                raise Unavailable(f"artefacts at {self.where}: {' '.join(str(exc).split())[:200]}") from None
            self.base = base.rstrip("/")
            self.local: Path | None = None
        else:
            # absolute: workers of a cluster do not share this process's working directory
            self.local = Path(self.where.removeprefix("file://")).absolute()
            self.base = str(self.local)

    def __repr__(self) -> str:
        return f"Location({self.where!r})"

    def describe(self, rel: str) -> str:
        """``rel`` as a path or URL for messages."""
        if self.local is not None:
            return str(self.local / rel)
        return f"{self.where.rstrip('/')}/{rel}"

    def _key(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def write(self, rel_dir: str, stem: str, suffix: str,
              write: Callable[[BinaryIO], None]) -> tuple[str, int, str]:
        """Write through ``write`` and publish as ``rel_dir/<stem>.<sha12>.<suffix>``; return
        (relative path, bytes, sha256 hex)."""
        if self.local is not None:
            directory = self.local / rel_dir
            with temp_file(directory, f".{stem}.") as (fh, tmp):
                write(fh)
            try:
                digest = sha256_file(tmp)
                target = directory / f"{stem}.{digest[:12]}.{suffix}"
                tmp.replace(target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            fsync_dir(directory)  # the rename is durable only once the directory entry is flushed
            return f"{rel_dir}/{target.name}", target.stat().st_size, digest
        buf = io.BytesIO()
        write(buf)
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        rel = f"{rel_dir}/{stem}.{digest[:12]}.{suffix}"
        self.fs.makedirs(self._key(rel_dir), exist_ok=True)  # a no-op on object stores
        self.fs.pipe_file(self._key(rel), data)  # one upload: visible whole or not at all
        return rel, len(data), digest

    def size(self, rel: str) -> int:
        """Bytes of ``rel``; OSError (FileNotFoundError) when it is not there."""
        if self.local is not None:
            return (self.local / rel).stat().st_size
        try:
            return int(self.fs.size(self._key(rel)))
        except FileNotFoundError:
            raise
        except Exception as exc:  # filesystems raise their own errors for a missing key
            raise FileNotFoundError(f"{self.describe(rel)}: {exc}") from None

    def open(self, rel: str) -> AbstractContextManager[BinaryIO]:
        """``rel`` opened for reading (seekable)."""
        if self.local is not None:
            return (self.local / rel).open("rb")
        return self.fs.open(self._key(rel), "rb")  # type: ignore[no-any-return]

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel) as fh:
            return fh.read()

    def sha256(self, rel: str) -> str:
        with self.open(rel) as fh:
            return sha256_stream(fh)

    def unlink(self, rel: str) -> None:
        """Remove ``rel`` if it is there."""
        if self.local is not None:
            (self.local / rel).unlink(missing_ok=True)
            return
        with suppress(FileNotFoundError):
            self.fs.rm_file(self._key(rel))

    def files(self, rel_dir: str) -> Iterator[tuple[str, float]]:
        """(relative path, modification time) of every file two levels under ``rel_dir``
        (``features/<extractor>/<file>``), temp files included."""
        if self.local is not None:
            folder = self.local / rel_dir
            if not folder.is_dir():
                return
            for path in folder.glob("*/*"):
                if path.is_file():
                    try:
                        yield path.relative_to(self.local).as_posix(), path.stat().st_mtime
                    except OSError:
                        continue
            return
        top = self._key(rel_dir)
        if not self.fs.exists(top):
            return
        for key, info in self.fs.find(top, maxdepth=2, detail=True).items():
            yield key[len(self.base) + 1:], _mtime(info)  # find() gives keys as _key() makes them

    def check_writable(self) -> None:
        """BadInput with the location when a test object cannot be written and removed."""
        if self.local is not None:
            try:
                self.local.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BadInput(f"artefacts at {self.local} cannot be written: "
                               f"{exc.strerror or type(exc).__name__}") from None
            return
        probe = f".write-test.{time.time_ns()}"
        try:
            self.fs.makedirs(self.base, exist_ok=True)
            self.fs.pipe_file(self._key(probe), b"")
            self.fs.rm_file(self._key(probe))
        except Exception as exc:
            raise BadInput(f"artefacts at {self.where} cannot be written: "
                           f"{' '.join(str(exc).split())[:200]}") from None


def _mtime(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            from datetime import datetime

            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
    return float("inf")  # unknown age: never swept (it may be a writer's file about to be registered)
