"""Child processes (ffmpeg, git, nvidia-smi) started safely from a threaded program.

Every child gets an explicit copy of the environment. Without one, the child's ``execve``
reads the C library's ``environ`` array, which another thread may be reallocating at that
moment (a library setting a variable as it loads, ``os.environ[...] = ...``); the child
then sees freed memory and the start fails with ``[Errno 14] Bad address`` now and then.
Speech is transcribed in a thread beside OCR, and the Space serves clips from worker
threads, so every call site goes through here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import Any


def _env(kw: dict[str, Any]) -> dict[str, Any]:
    if kw.get("env") is None:
        kw["env"] = dict(os.environ)  # os.environ copies its keys first: safe while it changes
    return kw


def run(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
    """:func:`subprocess.run` with ``env`` defaulting to a snapshot of ``os.environ``."""
    return subprocess.run(list(cmd), **_env(kw))


def popen(cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
    """:class:`subprocess.Popen` with ``env`` defaulting to a snapshot of ``os.environ``."""
    return subprocess.Popen(list(cmd), **_env(kw))
