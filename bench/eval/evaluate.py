"""The ``evaluate`` verb's engine: score predictions against labelled queries, and print the result.

One result dict for files and for in-memory runs; :func:`format_table` is the only place that rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.datasets.io import load_predictions, load_queries, read_jsonl
from bench.errors import BadInput
from bench.eval import metrics as m
from bench.types import QID, Prediction, Query

QVH_BRIEF_ORDER = (
    "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75",
    "MR-long-mAP", "MR-middle-mAP", "MR-short-mAP",
    *(f"HL-min-{level}-{kind}" for level, _ in m.SALIENCY_LEVELS for kind in ("mAP", "Hit1")),
)
"""The QVHighlights brief keys (percent), in the order the official script lists them."""
GROUNDING_KEYS = (*(f"R{k}@{t}" for k in m.GROUNDING_KS for t in m.GROUNDING_IOUS), "mIoU", "mAP")
CORPUS_KEYS = (*(f"video-R@{k}" for k in m.CORPUS_KS),
               *(f"moment-R@{k}@{t}" for k in m.CORPUS_KS for t in m.CORPUS_IOUS))

Locate = Callable[[QID], str]


def is_qvhighlights_style(queries: Sequence[Query]) -> bool:
    """A set is QVHighlights-style when every query is in a known video and has clip saliency labels.

    Saliency (``relevant_clip_ids`` + ``saliency_scores``) is what the QVHighlights release adds
    over plain moment annotations; the official metrics are defined for such sets.
    """
    return bool(queries) and all(q.vid is not None and m.has_saliency(q) for q in queries)


def _flat_metrics(queries: Sequence[Query], predictions: Mapping[QID, Prediction]) -> dict[str, Any]:
    """Every metric family that applies to ``queries``, without breakdowns."""
    scored = [q for q in queries if q.relevant_windows]
    out: dict[str, Any] = {"n_queries": len(scored)}
    if len(scored) < len(queries):
        out["n_without_windows"] = len(queries) - len(scored)
    qvh: dict[str, Any] | None = None
    if is_qvhighlights_style(queries):
        qvh = m.qvhighlights_metrics(queries, predictions)
        out.update(sorted(qvh["brief"].items(), key=lambda kv: QVH_BRIEF_ORDER.index(kv[0])))
    out.update(m.grounding_metrics(queries, predictions))
    if any(predictions[q.qid].pred_moments is not None for q in queries if q.qid in predictions):
        out.update(m.corpus_metrics(queries, predictions))
    if qvh is not None:
        out["qvhighlights"] = qvh
    return out


def _evaluate(queries: Sequence[Query], predictions: Sequence[Prediction], *, require_all: bool,
              gt_name: str, pred_name: str, locate_gt: Locate, locate_pred: Locate) -> dict[str, Any]:
    if not queries:
        raise BadInput(f"{gt_name}: no queries to evaluate")
    known: dict[QID, Query] = {}
    for q in queries:
        if q.qid in known:
            raise BadInput(f"{locate_gt(q.qid)}: field 'qid': duplicate qid {q.qid!r}; qids must be unique")
        known[q.qid] = q
    by_qid: dict[QID, Prediction] = {}
    for p in predictions:
        if p.qid in by_qid:
            raise BadInput(f"{locate_pred(p.qid)}: field 'qid': duplicate qid {p.qid!r}; one row per query")
        if p.qid not in known:
            hint = ""
            if str(p.qid) in {str(k) for k in known}:
                hint = " (the ground truth has it with another type: string vs integer; use the same type)"
            raise BadInput(f"{locate_pred(p.qid)}: field 'qid': qid {p.qid!r} is not in {gt_name}{hint}; "
                           "drop the row or evaluate against the right ground truth")
        by_qid[p.qid] = p
    missing = [q.qid for q in queries if q.qid not in by_qid]
    if missing and require_all:
        shown = ", ".join(repr(x) for x in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise BadInput(
            f"{pred_name}: no prediction for {len(missing)} of {len(queries)} queries in {gt_name} "
            f"(qid {shown}); predict every query, or score only the predicted ones with "
            "'evaluate --allow-missing' (require_all=False, the official script's match_number=False)"
        )
    evaluated = [q for q in queries if q.qid in by_qid]
    try:
        result = _flat_metrics(evaluated, by_qid)
        if missing:
            result["n_unpredicted"] = len(missing)
        result["by_tag"] = m.by_tag(evaluated, by_qid, _flat_metrics)
        result["by_lang"] = m.by_lang(evaluated, by_qid, _flat_metrics)
    except m.PredictionError as exc:
        where = locate_pred(exc.qid) if exc.side == "prediction" else locate_gt(exc.qid)
        raise BadInput(f"{where}: field '{exc.field_name}': {exc.rule}") from None
    return result


def evaluate_predictions(queries: Sequence[Query], predictions: Sequence[Prediction], *,
                         require_all: bool = True) -> dict[str, Any]:
    """Score in-memory ``predictions`` against ``queries``; same result as :func:`evaluate_files`."""
    gt_index = {q.qid: i for i, q in enumerate(queries)}
    pred_index = {p.qid: i for i, p in enumerate(predictions)}
    return _evaluate(
        queries, predictions, require_all=require_all, gt_name="the queries", pred_name="predictions",
        locate_gt=lambda qid: f"queries[{gt_index.get(qid, '?')}]",
        locate_pred=lambda qid: f"predictions[{pred_index.get(qid, '?')}]",
    )


def _line_finder(path: Path) -> Locate:
    """qid -> ``"path:line"`` of its first row; reads the file again only when an error is reported."""

    def locate(qid: QID) -> str:
        for number, row in read_jsonl(path):
            if isinstance(row, dict) and row.get("qid") == qid:
                return f"{path}:{number}"
        return str(path)

    return locate


def evaluate_files(gt: Path, pred: Path, *, require_all: bool = True) -> dict[str, Any]:
    """Score a predictions JSONL against a queries JSONL.

    Returns ``{"n_queries", <QVHighlights brief keys, percent> (QVHighlights-style sets), "R1@0.3",
    ..., "R5@0.7", "mIoU", "mAP" (fractions), <"video-R@K", "moment-R@K@t"> (when predictions
    carry ``pred_moments``), "qvhighlights": <official dict> (QVHighlights-style), "by_tag": {tag:
    {...}}, "by_lang": {lang: {...}}}``. ``n_without_windows`` / ``n_unpredicted`` appear when
    queries were left out for having no GT window / no prediction (``require_all=False``).

    Like the official script, every query must be predicted unless ``require_all`` is false, which
    scores only the predicted queries (its ``match_number=False``). A prediction for an unknown
    qid raises :class:`BadInput` naming the file and line.
    """
    gt, pred = Path(gt), Path(pred)
    queries = load_queries(gt)
    predictions = load_predictions(pred)
    return _evaluate(queries, predictions, require_all=require_all, gt_name=str(gt), pred_name=str(pred),
                     locate_gt=_line_finder(gt), locate_pred=_line_finder(pred))


# ----------------------------------------------------------------------------------------------
# Display


def _fmt_fraction(value: float) -> str:
    return f"{100 * value:6.2f}"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths,
                                                                                        strict=True)))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return out


def _section(title: str, groups: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> list[str]:
    present = [k for k in keys if any(k in g for g in groups.values())]
    if not present:
        return []
    rows = [[name, str(g.get("n_queries", "")),
             *(_fmt_fraction(g[k]) if k in g else "-" for k in present)] for name, g in groups.items()]
    return ["", title, *_grid(["", "n", *present], rows)]


def format_table(result: Mapping[str, Any]) -> str:
    """A terminal table of an :func:`evaluate_files` result. Fractions are shown in percent.

    QVHighlights brief keys are shown as the official script reports them; the rest with 2 decimals.
    """
    lines = [f"queries: {result.get('n_queries', 0)}"]
    for key in ("n_unpredicted", "n_without_windows"):
        if key in result:
            lines.append(f"{key.removeprefix('n_').replace('_', ' ')}: {result[key]} (not scored)")
    brief = [k for k in QVH_BRIEF_ORDER if k in result]
    if brief:
        lines += ["", "QVHighlights (official, percent)"]
        width = max(len(k) for k in brief)
        lines += [f"  {k.ljust(width)}  {result[k]:6.2f}" for k in brief]
    groups: dict[str, Mapping[str, Any]] = {"all": result}
    groups.update({f"tag:{k}": v for k, v in result.get("by_tag", {}).items()})
    groups.update({f"lang:{k}": v for k, v in result.get("by_lang", {}).items()})
    lines += _section("Moment retrieval (percent)", groups, GROUNDING_KEYS)
    lines += _section("Corpus retrieval (percent)", groups, CORPUS_KEYS)
    return "\n".join(lines) + "\n"
