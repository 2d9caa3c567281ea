"""Hugging Face ``datasets`` import and export of query sets.

A set becomes a ``DatasetDict`` with a ``queries`` table (canonical columns, nested windows
as lists of ``[start, end]``, ``extra`` fields as one JSON text column) and a ``videos``
table; set name, split and schema version ride in the queries table's description, so an
export imports back to identical rows. Other datasets (hub ids, json/csv/parquet files)
are read through the generic column mapping of :mod:`bench.datasets.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.datasets import BuildOptions
from bench.datasets.jsonl import FIELDS, SetCollector, convert_rows, finish
from bench.errors import BadInput
from bench.fsio import directory_swap
from bench.types import SCHEMA_VERSION, Query, QuerySet, RowError, Video

if TYPE_CHECKING:
    import datasets

MARK = "scenebench"
"""Key of the JSON description that marks a table as a SceneBench export."""

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def _query_features(qid_type: str) -> datasets.Features:
    from datasets import Features, List, Value

    return Features({
        "qid": Value(qid_type), "query": Value("string"), "vid": Value("string"),
        "duration": Value("float64"), "relevant_windows": List(List(Value("float64"))),
        "lang": Value("string"), "tags": List(Value("string")), "query_image": Value("string"),
        "relevant_clip_ids": List(Value("int64")), "saliency_scores": List(List(Value("int64"))),
        "extra": Value("string"),
    })


def _video_features() -> datasets.Features:
    from datasets import Features, Value

    return Features({"vid": Value("string"), "path": Value("string"), "duration": Value("float64"),
                     "subtitles": Value("string"), "lang": Value("string")})


def _qid_type(qs: QuerySet) -> str:
    kinds = {type(q.qid) for q in qs.queries}
    if kinds == {int}:
        return "int64"
    if kinds <= {str}:
        return "string"
    raise BadInput(f"query set {qs.name!r} mixes integer and string qids, which one Arrow column "
                   "cannot hold; make every qid a string")


def to_hf(qs: QuerySet) -> datasets.DatasetDict:
    """``DatasetDict({"queries": ..., "videos": ...})``; one row per query / video.

    Relative video and subtitle paths are made absolute against ``qs.root`` so the tables
    stay valid wherever they are saved.
    """
    from datasets import Dataset, DatasetDict, DatasetInfo

    rows = []
    for q in qs.queries:
        rows.append({
            "qid": q.qid, "query": q.query, "vid": q.vid, "duration": q.duration,
            "relevant_windows": [[s, e] for s, e in q.relevant_windows], "lang": q.lang,
            "tags": list(q.tags), "query_image": q.query_image, "relevant_clip_ids": q.relevant_clip_ids,
            "saliency_scores": q.saliency_scores, "extra": json.dumps(q.extra, ensure_ascii=False),
        })
    videos = []
    for v in qs.videos.values():
        path = v.resolve(qs.root)
        subs = v.resolve_subtitles(qs.root)
        videos.append({"vid": v.vid, "path": v.path if path is None else str(path),
                       "duration": v.duration, "subtitles": None if subs is None else str(subs),
                       "lang": v.lang})
    meta = json.dumps({MARK: SCHEMA_VERSION, "name": qs.name, "split": qs.split})
    qf, vf = _query_features(_qid_type(qs)), _video_features()
    return DatasetDict({
        "queries": Dataset.from_list(rows, features=qf, info=DatasetInfo(description=meta, features=qf)),
        "videos": Dataset.from_list(videos, features=vf, info=DatasetInfo(description=meta, features=vf)),
    })


def export_hf(qs: QuerySet, path: Path) -> Path:
    """Save ``to_hf(qs)`` with ``save_to_disk`` at ``path`` (replaced atomically); card as README.md."""
    path = Path(path)
    with directory_swap(path) as tmp:
        to_hf(qs).save_to_disk(str(tmp))
        if qs.card:
            (tmp / "README.md").write_text(qs.card, encoding="utf-8")
    return path


def _load(source: str, split: str | None) -> tuple[Any, str]:
    """``(Dataset or DatasetDict, label for messages)`` from a saved dir, a file or a hub id."""
    import datasets

    path = Path(source)
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            return datasets.load_from_disk(str(path)), str(path)
        if path.is_file():
            builder = _FILE_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise BadInput(f"{path}: unsupported file type; use .json, .jsonl, .csv or .parquet, "
                               "or a directory written by save_to_disk")
            return datasets.load_dataset(builder, data_files=str(path), split="train"), str(path)
        return datasets.load_dataset(source, split=split), source
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{source}: cannot load it as a Hugging Face dataset ({reason}); pass a "
                       "save_to_disk directory, a json/csv/parquet file, or a reachable hub id") from None


def _pick(obj: Any, split: str | None, label: str) -> tuple[Any, Any, str]:
    """``(queries table, videos table or None, table name)``."""
    from datasets import DatasetDict

    if not isinstance(obj, DatasetDict):
        return obj, None, split or "train"
    if "queries" in obj:
        return obj["queries"], obj.get("videos"), "queries"
    names = list(obj)
    if split is not None and split in obj:
        return obj[split], None, split
    if len(names) == 1:
        return obj[names[0]], None, names[0]
    raise BadInput(f"{label}: holds splits {', '.join(names)}; choose one with --split")


def _meta(table: Any) -> dict[str, Any] | None:
    try:
        meta = json.loads(table.info.description or "")
    except (json.JSONDecodeError, TypeError):
        return None
    return meta if isinstance(meta, dict) and MARK in meta else None


def collect(source: str | Path, *, split: str | None = None, columns: dict[str, str] | None = None,
            videos: Path | None = None) -> tuple[SetCollector, str, str]:
    """``(collector, set name, split)`` read from ``source``; see :func:`import_hf`."""
    obj, label = _load(str(source), split)
    table, video_table, table_name = _pick(obj, split, label)
    where = f"{label}[{table_name}]"
    meta = _meta(table)
    if meta is None:
        cols = {**FIELDS, **(columns or {})}
        missing = [f"{f}={c}" for f, c in (columns or {}).items() if c not in table.column_names]
        if missing:
            raise BadInput(f"{where}: mapped column(s) not in the table: {', '.join(missing)}; "
                           f"it has: {', '.join(table.column_names)}")
        rows = ((i, row) for i, row in enumerate(table, start=1))
        collector = convert_rows(rows, Path(label), cols, videos=videos, explicit=columns or {})
        return collector, Path(label).stem or label, split or table_name
    if meta[MARK] > SCHEMA_VERSION:
        raise BadInput(f"{where}: written by a newer SceneBench (schema {meta[MARK]}, this one reads "
                       f"{SCHEMA_VERSION}); upgrade scenebench")
    collector = SetCollector(videos)
    if video_table is not None:
        for i, row in enumerate(video_table, start=1):
            video = Video.from_row({k: v for k, v in row.items() if v is not None}, f"{label}[videos]", i)
            if video.vid in collector.videos:
                raise RowError(f"{label}[videos]:{i}", "vid", f"duplicate vid {video.vid!r}")
            file = collector.video_file(video.vid)
            if video.path is None and file is not None:
                video = Video(video.vid, str(file), video.duration, video.subtitles, video.lang)
            collector.videos[video.vid] = video
    for i, row in enumerate(table, start=1):
        clean = {k: v for k, v in row.items() if v is not None and k != "extra"}
        try:
            extra = json.loads(row.get("extra") or "{}")
        except json.JSONDecodeError:
            raise RowError(f"{where}:{i}", "extra", "must be a JSON object text") from None
        if not isinstance(extra, dict):
            raise RowError(f"{where}:{i}", "extra", f"must be a JSON object, got {extra!r}")
        query = Query.from_row({**clean, **extra}, where, i)
        collector.add_query(query, f"{where}:{i}")
        if query.vid is not None and query.vid not in collector.videos:
            raise RowError(f"{where}:{i}", "vid", f"unknown vid {query.vid!r}: not in the videos table")
    return collector, str(meta.get("name", table_name)), str(meta.get("split", "test"))


def import_hf(source: str | Path, *, split: str | None = None, columns: dict[str, str] | None = None,
              videos: Path | None = None) -> QuerySet:
    """Load a SceneBench export, a json/csv/parquet file, or a hub dataset id as a QuerySet.

    Exports (see :func:`to_hf`) come back row for row. Anything else is read with the
    generic column mapping (``columns``: canonical field -> column, see
    :data:`bench.datasets.jsonl.FIELDS`); ``videos`` locates video files by vid. ``split``
    picks a split of a multi-split dataset.
    """
    collector, name, split_name = collect(source, split=split, columns=columns, videos=videos)
    return collector.query_set(name, split_name)


def build(out: Path, options: BuildOptions) -> QuerySet:
    """Builder ``hf``: ``--input`` a save_to_disk dir, a json/csv/parquet file or a hub id."""
    if options.input is None:
        raise BadInput("builder 'hf' needs --input: a save_to_disk directory, a json/csv/parquet "
                       "file, or a Hugging Face hub dataset id")
    explicit = options.split if "split" in options.model_fields_set else None
    collector, name, split = collect(options.input, split=explicit, columns=options.columns or None,
                                     videos=options.videos)
    return finish(collector, out, options, source=Path(str(options.input)), split=explicit or split,
                  title=f"{name} (Hugging Face import)",
                  about="Labelled queries imported from a Hugging Face `datasets` table.")
