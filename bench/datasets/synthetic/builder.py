"""Entry points of the synthetic sets: build ``synthetic-v1``/``synthetic-mini`` (or any spec) into a
folder, cached by a stamp of the spec and the generator, atomically replaced."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from bench.datasets import BuildOptions
from bench.datasets.io import load_query_set, write_jsonl
from bench.datasets.synthetic.card import render_card
from bench.datasets.synthetic.encode import Progress, make_video
from bench.datasets.synthetic.queries import make_queries, scene_rows
from bench.datasets.synthetic.spec import SynthSpec, load_spec, plan, spec_files, spec_path
from bench.datasets.synthetic.tools import Tools, check_tools
from bench.errors import BadInput
from bench.fsio import directory_swap
from bench.types import QuerySet, Video

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
"""Bumped whenever the rendering changes what a spec produces; part of the cache stamp."""
GENERATOR = "bench.datasets.synthetic"
"""Written to meta.json; a build only ever replaces a folder whose meta.json names this generator."""


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Build ``synthetic-v1`` (14 videos, ~90 queries) into ``out``; cached by spec hash."""
    return build_from_spec(spec_path("synthetic-v1"), out, options)


def build_v2(out: Path, options: BuildOptions) -> QuerySet:
    """Build ``synthetic-v2`` (v1's videos and queries and more: see its spec) into ``out``."""
    return build_from_spec(spec_path("synthetic-v2"), out, options)


def build_actions(out: Path, options: BuildOptions) -> QuerySet:
    """Build ``synthetic-actions-v1`` (short actions inside long shots) into ``out``."""
    return build_from_spec(spec_path("synthetic-actions-v1"), out, options)


def build_mood(out: Path, options: BuildOptions) -> QuerySet:
    """Build ``synthetic-mood-v1`` (scenes built for a mood, mood queries) into ``out``."""
    return build_from_spec(spec_path("synthetic-mood-v1"), out, options)


def build_mini(out: Path, options: BuildOptions) -> QuerySet:
    """Build ``synthetic-mini`` (2 videos of 12 s, 8 queries) into ``out``; cached by spec hash."""
    return build_from_spec(spec_path("synthetic-mini"), out, options)


def build_from_spec(spec_file: Path, out: Path, options: BuildOptions | None = None) -> QuerySet:
    """Render the set that ``spec_file`` describes into the directory ``out`` and load it.

    Writes ``videos/*.mp4``, ``videos.jsonl``, ``queries.jsonl``, ``scenes.jsonl``, ``meta.json``
    and ``README.md``. A build with the same :func:`build_stamp` returns at once unless
    ``options.force``. Everything is made in a temporary directory
    beside ``out`` and renamed into place, so a killed build leaves ``out`` as it was.
    """
    options = options or BuildOptions()
    spec_file = Path(spec_file)
    out = Path(out)
    spec = load_spec(spec_file)
    stamp = build_stamp(spec_file, options)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        if not options.force:
            cached = _load_cached(out, stamp)
            if cached is not None:
                return cached
        _refuse_foreign(out)
        for stale in [*out.parent.glob(f".{out.name}.build-*"), *out.parent.glob(f".{out.name}.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed build; we hold the lock
        tools = check_tools(spec)
        with directory_swap(out) as tmp:
            _build_into(tmp, spec, spec_file, stamp, options, tools)
    return load_query_set(out, spec.name, check_files=True)


def build_stamp(spec_file: Path, options: BuildOptions) -> str:
    """Hash of what a build depends on: the bytes of the spec and its parts, the generator
    version, the generator's own source (so an edited renderer never serves a stale cache) and
    ``options.limit``."""
    parts = [*(hashlib.sha256(f.read_bytes()).digest() for f in spec_files(spec_file)),
             GENERATOR_VERSION.encode(), _source_digest(), str(options.limit).encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


@cache
def _source_digest() -> bytes:
    # Read once per process: the stamp describes the code that is running, every module of the
    # generator (an edit to any of them changes what a spec produces).
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Serialise builds of one directory across processes (the second one then finds the cache)."""
    import fcntl

    with (out.parent / f".{out.name}.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load_cached(out: Path, stamp: str) -> QuerySet | None:
    """The set already in ``out`` when it was built with ``stamp`` and is intact; else None."""
    meta = out / "meta.json"
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("build_stamp") != stamp:
        return None
    try:
        return load_query_set(out, str(doc.get("name")), check_files=True)
    except BadInput as exc:
        log.warning("rebuilding %s: the cached copy is damaged (%s)", out, exc)
        return None


def _refuse_foreign(out: Path) -> None:
    # The build replaces ``out`` wholesale; never do that to a folder it did not make.
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    try:
        doc = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        ours = isinstance(doc, dict) and doc.get("generator") == GENERATOR
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise BadInput(f"{out}: exists and was not made by this generator; pass a new or empty --out "
                       "directory (it is replaced on every build)")


def _build_into(tmp: Path, spec: SynthSpec, spec_file: Path, stamp: str, options: BuildOptions,
                tools: Tools) -> None:
    from tqdm import tqdm

    work = tmp / ".work"
    work.mkdir()
    (tmp / "videos").mkdir()
    total = sum(round(s.duration_s * spec.fps) for v in spec.videos for s in v.scenes)
    workers = max(1, min(4, os.cpu_count() or 1, len(spec.videos)))
    with tqdm(total=total, unit="frame", desc=f"building {spec.name}", file=sys.stderr,
              leave=False) as bar, ThreadPoolExecutor(max_workers=workers) as pool:
        progress = Progress(bar)
        futures = [pool.submit(make_video, tools, spec, vi, v, tmp / "videos" / f"{v.vid}.mp4", work,
                               str(spec_file), progress)
                   for vi, v in enumerate(spec.videos)]
        try:
            built = [f.result() for f in futures]
        except BaseException:
            progress.stop.set()  # the other workers give up at their next frame
            for f in futures:
                f.cancel()
            raise
    shutil.rmtree(work)

    videos = {v.vid: Video(vid=v.vid, path=f"videos/{v.vid}.mp4", duration=b.duration_s, lang=v.lang)
              for v, b in zip(spec.videos, built, strict=True)}
    plans = {v.vid: plan(spec, vi, v) for vi, v in enumerate(spec.videos)}
    queries = make_queries(spec, plans, videos)
    if options.limit is not None:
        queries = queries[:options.limit]
    qs = QuerySet(name=spec.name, videos=videos, queries=queries, split=options.split,
                  card=render_card(spec, spec_file))
    qs.validate(tmp / "queries.jsonl")
    write_jsonl(tmp / "videos.jsonl", (v.to_row() for v in videos.values()))
    write_jsonl(tmp / "queries.jsonl", (q.to_row() for q in queries))
    write_jsonl(tmp / "scenes.jsonl", scene_rows(spec, plans, built))
    meta = {
        "name": spec.name, "split": options.split, "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION, "build_stamp": stamp,
        "spec_sha256": hashlib.sha256(spec_file.read_bytes()).hexdigest(),
        "fps": spec.fps, "size": [spec.width, spec.height],
        "videos": {v.vid: {"audio": v.audio, "vfr": v.vfr, "rotation": v.rotation, "scenes": len(v.scenes)}
                   for v in spec.videos},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(qs.card or "", encoding="utf-8")
    _share(tmp)


def _share(root: Path) -> None:
    """Give the set the permissions of ordinary files (temp dirs and files are created private)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [root, *root.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)

