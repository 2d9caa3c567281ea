"""The Space's leaderboard and benchmark browser, read from the runner's result files and
the predictions saved beside them; labels of the choices they offer.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BadInput
from bench.serving.display import best_iou
from bench.types import Moment, Query, QuerySet

if TYPE_CHECKING:
    from bench.eval.results import ResultFile

log = logging.getLogger("bench")


def query_label(q: Query) -> str:
    return f"{q.qid} · {' '.join(q.query.split())[:90]}"


def label_qid(label: str) -> str:
    return label.split(" · ", 1)[0]


def find_query(qs: QuerySet, label: str) -> Query:
    qid = label_qid(label)
    for q in qs.queries:
        if str(q.qid) == qid:
            return q
    raise BadInput(f"unknown benchmark query {qid!r}")


def group_label(dataset: str, split: str) -> str:
    return f"{dataset} · {split}"


def parse_group_label(label: str) -> tuple[str, str]:
    dataset, _, split = label.partition(" · ")
    if not split:
        raise BadInput(f"not a 'dataset · split' choice: {label!r}")
    return dataset, split


LEADERBOARD_METRICS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU")


def leaderboard_table(rows: Sequence[ResultFile], tag: str = "all", lang: str = "all",
                      ) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of one dataset's leaderboard, metrics restricted to a tag and/or a
    language (``all`` for none); rows keep the report's order and ranks."""
    from bench.eval import report

    if not rows:
        return [], []
    main = report.main_score(rows[0])
    cols = [main, *[c for c in LEADERBOARD_METRICS if c != main]]
    if rows[0].mode == "corpus":
        cols = [main, *[c for c in report.CORPUS_COLUMNS if c != main]]
    cols += [c for c in report.CONFIDENCE_COLUMNS if any(c in r.metrics for r in rows)]
    headers = ["#", "retriever", "family", *cols, "queries", "p50 ms", "note"]
    data: list[list[Any]] = []
    for flat, r in zip(report.leaderboard_rows(rows), rows, strict=True):
        metrics: Mapping[str, float] = r.metrics
        if tag != "all":
            metrics = r.metrics_by_tag.get(tag, {})
        if lang != "all":
            metrics = r.metrics_by_lang.get(lang, {}) if tag == "all" else {}
        n = metrics.get("n_queries", r.n_queries if tag == lang == "all" else None)
        data.append([flat["rank"] or ("floor" if flat["floor"] else "–"), r.retriever, r.family,
                     *[report.fmt_metric(metrics.get(c)) for c in cols],
                     "–" if n is None else int(n), report.fmt_metric(flat["p50_ms"], 1), flat["note"]])
    return headers, data


def load_predictions(results_dir: Path, results: Sequence[ResultFile], dataset: str,
                     split: str = "test") -> dict[str, dict[str, list[list[float]]]]:
    """retriever -> qid -> predicted windows ``[[start, end, score], ...]`` (best first), from
    the ``*.predictions.jsonl`` files beside the grounding results of ``dataset``."""
    from bench.eval.results import predictions_path

    out: dict[str, dict[str, list[list[float]]]] = {}
    for r in results:
        if r.dataset != dataset or r.split_key != split or r.status != "ok":
            continue
        path = predictions_path(results_dir, r)
        if not path.is_file():
            continue
        by_qid: dict[str, list[list[float]]] = {}
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    windows = [[float(w[0]), float(w[1]), float(w[2])]
                               for w in row.get("pred_relevant_windows") or []]
                    by_qid[str(row["qid"])] = windows
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    log.warning("%s:%d: skipped unreadable prediction (%s)", path, i, exc)
        out[r.retriever] = by_qid
    return out


def disagreement(q: Query, preds: Mapping[str, Mapping[str, list[list[float]]]]) -> float:
    """How much the methods disagree on ``q``: the spread (max - min) of their top-1 IoUs;
    a method with no prediction for ``q`` counts as IoU 0."""
    ious = []
    for by_qid in preds.values():
        windows = by_qid.get(str(q.qid)) or []
        ious.append(best_iou((windows[0][0], windows[0][1]), q.relevant_windows) if windows else 0.0)
    return max(ious) - min(ious) if len(ious) > 1 else 0.0


def browser_queries(qs: QuerySet, preds: Mapping[str, Mapping[str, list[list[float]]]],
                    sort: str = "disagreement") -> list[tuple[str, float]]:
    """(label, disagreement) of the set's grounding queries, most disputed first or by qid."""
    items = [(query_label(q), disagreement(q, preds), str(q.qid))
             for q in qs.queries if q.vid is not None]
    if sort == "disagreement":
        items.sort(key=lambda t: (-t[1], _natural(t[2])))
    else:
        items.sort(key=lambda t: _natural(t[2]))
    return [(label, d) for label, d, _ in items]


def _natural(text: str) -> list[Any]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text) if p]


def prediction_rows(q: Query, preds: Mapping[str, Mapping[str, list[list[float]]]],
                    top_k: int = 5) -> list[tuple[str, list[Moment]]]:
    """(method, its top-k moments for ``q``) for every method with results, sorted by name."""
    out = []
    for name, by_qid in sorted(preds.items()):
        windows = by_qid.get(str(q.qid)) or []
        out.append((name, [Moment(q.vid or "", w[0], w[1], w[2]) for w in windows[:top_k]]))
    return out
