"""Child processes start reliably while other threads change the environment."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench import subproc


@contextmanager
def environment_churn() -> Iterator[None]:
    """Another thread sets and removes variables without pause, as a library loading beside
    a transcription thread may: the C ``environ`` array is reallocated again and again."""
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            os.environ[f"SCENEBENCH_CHURN_{i % 40}"] = "x" * (i % 97)
            if i % 40 == 39:
                for k in range(40):
                    os.environ.pop(f"SCENEBENCH_CHURN_{k}", None)
            i += 1

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for k in range(40):
            os.environ.pop(f"SCENEBENCH_CHURN_{k}", None)


def test_children_start_while_another_thread_changes_the_environment() -> None:
    # Without an explicit environment a third or so of these fail with [Errno 14] Bad address.
    true = shutil.which("true") or pytest.fail("no 'true' program on PATH")
    with environment_churn():
        codes = [subproc.run([true], check=False).returncode for _ in range(150)]
    assert codes == [0] * 150


def test_the_child_sees_the_environment_of_the_moment() -> None:
    show = [sys.executable, "-c", "import os; print(os.environ.get('SCENEBENCH_SUBPROC_PROBE'))"]
    os.environ["SCENEBENCH_SUBPROC_PROBE"] = "seen"
    try:
        out = subproc.run(show, capture_output=True, text=True, check=False)
        given = subproc.run(show, capture_output=True, text=True, check=False,
                            env={"PATH": os.environ["PATH"]})
    finally:
        del os.environ["SCENEBENCH_SUBPROC_PROBE"]
    assert (out.returncode, out.stdout.strip()) == (0, "seen")
    assert given.stdout.strip() == "None"  # an environment the caller gives is kept


def test_popen_takes_the_same_care() -> None:
    with environment_churn():
        procs = [subproc.popen([sys.executable, "-c", "pass"]) for _ in range(40)]
        codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0] * 40
