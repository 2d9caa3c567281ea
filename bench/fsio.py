"""Atomic file writes and directory swaps: a reader sees the old content or the new, never a
part, and two processes writing the same path never trip over each other's temp names."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from bench.paths import umask_mode


def fsync_dir(directory: Path) -> None:
    """Flush ``directory``'s entries, so a rename inside it survives a power cut (best effort:
    some filesystems refuse to fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def temp_file(directory: Path, prefix: str, *, suffix: str = ".tmp") -> Iterator[tuple[BinaryIO, Path]]:
    """A new file with a unique name ``<prefix>XXXX<suffix>`` in ``directory``, open in binary
    mode for writing and reading (zip writers seek back).

    On a clean exit the file is flushed, fsynced, closed and given the mode a plain ``open``
    would give; the caller then renames it into place. On an error it is removed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w+b") as fh:
            yield fh, tmp
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(umask_mode())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_writer(path: Path, *, binary: bool = False, encoding: str = "utf-8",
                  newline: str | None = None) -> Iterator[IO[Any]]:
    """An open file whose content replaces ``path`` (``os.replace``) when the block ends
    without an error; an error leaves ``path`` as it was and no temp file behind."""
    path = Path(path)
    with temp_file(path.parent, f".{path.name}.") as (raw, tmp):
        if binary:
            yield raw
        else:
            text = io.TextIOWrapper(raw, encoding=encoding, newline=newline)
            try:
                yield text
            finally:
                text.detach()  # flushes; the binary file stays open for temp_file to fsync and close
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (parent directories are created)."""
    with atomic_writer(path, binary=True) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically; line ends are written as given."""
    with atomic_writer(path, encoding=encoding, newline="") as fh:
        fh.write(text)


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = None,
                      sort_keys: bool = False) -> None:
    """Replace ``path`` with ``obj`` as JSON (UTF-8, non-ASCII kept as is) atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=sort_keys))


def _sibling_name(target: Path, tag: str) -> Path:
    # PID and a random suffix: two processes (or two threads of one) never pick the same name.
    return target.with_name(f".{target.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def temp_sibling(target: Path) -> Path:
    """A unique path beside ``target`` with its suffix, for a tool that writes the file itself
    (ffmpeg picks its format by the suffix): write there, then ``replace`` it onto ``target``."""
    return target.with_name(f".{target.stem}.{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")


def new_sibling_dir(target: Path) -> Path:
    """Create and return an empty directory beside ``target`` named
    ``.<name>.build-<pid>-<random>``, to build ``target``'s replacement in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        built = _sibling_name(target, "build")
        with contextlib.suppress(FileExistsError):
            built.mkdir()
            return built


def swap_dir(built: Path, target: Path, *, keep_existing: bool = False) -> bool:
    """Put the finished directory ``built`` in place of ``target``; True when it is in place.

    An existing ``target`` is first renamed aside to ``.<name>.old-<pid>-<random>`` and removed
    after the swap. With ``keep_existing`` an existing ``target`` (another process finished
    first) is kept and ``built`` removed. When another writer puts its own directory in place
    between our two renames, theirs is kept too: both are complete, and ours is removed.
    """
    if keep_existing and target.exists():
        shutil.rmtree(built, ignore_errors=True)
        return False
    old: Path | None = None
    if target.exists():
        old = _sibling_name(target, "old")
        try:
            target.rename(old)
        except FileNotFoundError:  # another writer moved it aside first
            old = None
    try:
        built.rename(target)
    except OSError:
        if not target.exists():
            if old is not None:
                old.rename(target)
            raise
        shutil.rmtree(built, ignore_errors=True)
        return False
    finally:
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    return True


@contextlib.contextmanager
def directory_swap(target: Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a new empty directory beside ``target``; when the block ends without an error it
    replaces ``target`` (see :func:`swap_dir`), and after an error it is removed and ``target``
    is left as it was."""
    built = new_sibling_dir(Path(target))
    try:
        yield built
        swap_dir(built, Path(target), keep_existing=keep_existing)
    finally:
        shutil.rmtree(built, ignore_errors=True)  # gone after a swap; a half-built leftover otherwise
