"""Regression gate: compare a results directory with a baseline within per-metric tolerances.

A baseline is either a results directory or a JSON file written by :func:`make_baseline`
(``{"schema_version", "tolerances", "entries": [...]}``). A drop beyond the tolerance, a
missing result, or a result that is no longer ``ok`` is a regression (exit code 1). The
gate never passes vacuously: a baseline with nothing readable in it is bad input, and a
comparison that checked no metric fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BadInput
from bench.eval.results import RESULT_SCHEMA_VERSION, ResultFile, iter_results

BASELINE_SCHEMA_VERSION = 1
DEFAULT_TOLERANCE = 0.02
"""Absolute drop allowed on a fraction-valued metric (2 points of recall)."""

Key = tuple[str, str, str]  # (retriever, dataset, split_key)


@dataclass
class Row:
    key: Key
    metric: str
    baseline: float | None
    current: float | None
    tolerance: float
    status: str  # "ok" | "improved" | "regressed" | "missing" | "not-ok"
    label: str = ""

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    problem: str | None = None
    """Why the comparison failed as a whole (it compared nothing), apart from its rows."""

    @property
    def ok(self) -> bool:
        return self.problem is None and not any(
            r.status in {"regressed", "missing", "not-ok"} for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"ok": self.ok}
        if self.problem is not None:
            doc["reason"] = self.problem
        return {**doc, "rows": [
            {"retriever": r.key[0], "dataset": r.key[1], "split": r.key[2], "metric": r.metric,
             "baseline": r.baseline, "current": r.current, "delta": r.delta,
             "tolerance": r.tolerance, "status": r.status, "label": r.label} for r in self.rows]}

    def table(self) -> str:
        """A readable diff table; regressions first."""
        order = {"regressed": 0, "missing": 0, "not-ok": 0, "improved": 1, "ok": 2}
        rows = sorted(self.rows, key=lambda r: (order[r.status], r.key, r.metric))
        head = f"{'retriever':28s} {'dataset':14s} {'split':13s} {'metric':16s} " \
               f"{'baseline':>9s} {'current':>9s} {'delta':>8s} {'tol':>6s}  status"
        lines = [head, "-" * len(head)]
        for r in rows:
            b = "-" if r.baseline is None else f"{r.baseline:.4f}"
            c = "-" if r.current is None else f"{r.current:.4f}"
            d = "-" if r.delta is None else f"{r.delta:+.4f}"
            label = f" ({r.label})" if r.label else ""
            lines.append(f"{r.key[0]:28s} {r.key[1]:14s} {r.key[2]:13s} {r.metric:16s} "
                         f"{b:>9s} {c:>9s} {d:>8s} {r.tolerance:6.3f}  {r.status.upper()}{label}")
        n_bad = sum(r.status in {"regressed", "missing", "not-ok"} for r in self.rows)
        lines.append("")
        if self.problem is not None:
            lines.append(f"FAIL: {self.problem}")
        else:
            lines.append("PASS: no regression" if self.ok else f"FAIL: {n_bad} regression(s)")
        return "\n".join(lines)


def _key(r: ResultFile) -> Key:
    return (r.retriever, r.dataset, r.split_key)


def load_baseline(path: Path) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Entries (retriever, dataset, split, metrics, label) and tolerances from a file or dir."""
    path = Path(path)
    if path.is_dir():
        entries = [{"retriever": r.retriever, "dataset": r.dataset, "split": r.split_key,
                    "metrics": r.metrics, "status": r.status,
                    "label": "random-init: catches code changes only" if r.random_init else ""}
                   for _, r in iter_results(path)]
        if not entries:
            n_json = sum(1 for _ in path.rglob("*.json"))
            why = (f"none of its {n_json} .json file(s) is a readable result file" if n_json
                   else "it holds no result files")
            raise BadInput(f"{path}: nothing to compare against: {why}; point --baseline at a "
                           "results directory or a baseline JSON")
        return entries, {"default": DEFAULT_TOLERANCE}
    if not path.is_file():
        raise BadInput(f"{path}: baseline not found (a results directory or a baseline JSON)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: unreadable baseline ({exc})") from None
    if not isinstance(doc, dict) or "entries" not in doc:
        raise BadInput(f"{path}: not a baseline file (no 'entries'); write one with make_baseline")
    version = doc.get("schema_version")
    if not isinstance(version, int) or version > BASELINE_SCHEMA_VERSION:
        raise BadInput(f"{path}: baseline schema v{version} is newer than this SceneBench "
                       f"(v{BASELINE_SCHEMA_VERSION}); upgrade instead of comparing wrong fields")
    result_version = doc.get("result_schema_version", RESULT_SCHEMA_VERSION)
    if isinstance(result_version, int) and result_version > RESULT_SCHEMA_VERSION:
        raise BadInput(f"{path}: baseline metrics come from result schema v{result_version}, "
                       f"newer than this SceneBench (v{RESULT_SCHEMA_VERSION})")
    entries = doc["entries"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise BadInput(f"{path}: field 'entries' must be a list of objects")
    if not entries:
        raise BadInput(f"{path}: the baseline has no entries: nothing to compare against")
    tolerances = {"default": DEFAULT_TOLERANCE, **doc.get("tolerances", {})}
    return list(entries), tolerances


def compare(results_dir: Path, baseline: Path) -> Outcome:
    """Every baseline metric must be within tolerance in ``results_dir``."""
    entries, tolerances = load_baseline(baseline)
    current = {_key(r): r for _, r in iter_results(results_dir)}
    out = Outcome()
    for e in entries:
        key: Key = (e["retriever"], e["dataset"], e["split"])
        label = e.get("label", "")
        res = current.get(key)
        metrics: dict[str, float] = e.get("metrics", {})
        if res is None:
            out.rows.append(Row(key, "*", None, None, 0.0, "missing", label))
            continue
        if res.status != "ok":
            if e.get("status", "ok") == "ok":
                out.rows.append(Row(key, "status", None, None, 0.0, "not-ok",
                                    f"{res.status}: {res.reason}"))
            continue
        for metric, base_value in sorted(metrics.items()):
            tol = float(tolerances.get(metric, tolerances["default"]))
            cur = res.metrics.get(metric)
            if cur is None:
                out.rows.append(Row(key, metric, base_value, None, tol, "missing", label))
            elif cur < base_value - tol:
                out.rows.append(Row(key, metric, base_value, cur, tol, "regressed", label))
            elif cur > base_value + tol:
                out.rows.append(Row(key, metric, base_value, cur, tol, "improved", label))
            else:
                out.rows.append(Row(key, metric, base_value, cur, tol, "ok", label))
    if not out.rows:
        out.problem = (f"nothing compared: none of the {len(entries)} baseline entries has a metric "
                       "to check (each was skipped: no metrics, or not ok in both)")
    return out


def make_baseline(results_dir: Path, out: Path, *, metrics: list[str] | None = None,
                  tolerances: dict[str, float] | None = None) -> Path:
    """Write a baseline JSON from the ``ok`` results in ``results_dir``."""
    entries = []
    for _, r in sorted(iter_results(results_dir), key=lambda pr: _key(pr[1])):
        if r.status != "ok":
            continue
        kept = {k: v for k, v in sorted(r.metrics.items()) if metrics is None or k in metrics}
        entries.append({"retriever": r.retriever, "dataset": r.dataset, "split": r.split_key,
                        "status": r.status, "metrics": kept,
                        "label": "random-init: catches code changes only" if r.random_init else ""})
    doc = {"schema_version": BASELINE_SCHEMA_VERSION, "result_schema_version": RESULT_SCHEMA_VERSION,
           "tolerances": {"default": DEFAULT_TOLERANCE, **(tolerances or {})}, "entries": entries}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
