"""Regression gate: compare a results directory with a baseline within per-metric tolerances.

A baseline is a results directory (the committed ``snapshot/``, whose ``gate.yaml`` says what
is held and how: see :mod:`bench.eval.snapshot`) or a JSON file written by
:func:`make_baseline` (``{"schema_version", "tolerances", "entries": [...]}``). A drop beyond
the tolerance, a missing result, or a result that is no longer ``ok`` is a regression (exit
code 1); so is any change outside the exact band of a deterministic configuration. A metric
whose baseline is within its one-sided tolerance of zero could never drop out of it, so it
is not held. The gate never passes vacuously: a baseline with nothing readable in it is bad
input, and a comparison that checked no metric fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BadInput
from bench.eval.results import RESULT_SCHEMA_VERSION, ResultFile, iter_results
from bench.eval.snapshot import GatePolicy, load_policy

BASELINE_SCHEMA_VERSION = 1
DEFAULT_TOLERANCE = 0.02
"""Absolute drop allowed on a fraction-valued metric (2 points of recall)."""

Key = tuple[str, str, str]  # (retriever, dataset, split_key)
FAILING = {"regressed", "changed", "missing", "not-ok"}
TAG_PREFIX = "tag:"
EXACT = "exact"
"""An entry's ``band``: two-sided within its tolerance (a deterministic configuration)."""


@dataclass
class Row:
    key: Key
    metric: str
    baseline: float | None
    current: float | None
    tolerance: float
    status: str  # "ok" | "improved" | "regressed" | "changed" | "missing" | "not-ok"
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
            r.status in FAILING for r in self.rows)

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
        order = {"regressed": 0, "changed": 0, "missing": 0, "not-ok": 0, "improved": 1, "ok": 2}
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
        n_bad = sum(r.status in FAILING for r in self.rows)
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
        policy = load_policy(path)
        results = [r for _, r in iter_results(path)]
        entries = ([_entry(r) for r in results] if policy is None
                   else [_held(r, policy) for r in results
                         if r.dataset in policy.datasets and r.retriever in policy.configurations])
        if not entries:
            n_json = sum(1 for _ in path.rglob("*.json"))
            why = (f"none of its {n_json} .json file(s) is a readable result file" if n_json
                   else "it holds no result files")
            raise BadInput(f"{path}: nothing to compare against: {why}; point --baseline at a "
                           "results directory or a baseline JSON")
        return entries, {"default": DEFAULT_TOLERANCE if policy is None else policy.tolerance}
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
        exact = e.get("band") == EXACT
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
            tol = float(e["tolerance"]) if "tolerance" in e else \
                float(tolerances.get(metric, tolerances["default"]))
            if not exact and base_value <= tol:
                continue  # it could never drop below its band: holding it would be vacuous
            cur = current_metric(res, metric)
            if cur is None:
                out.rows.append(Row(key, metric, base_value, None, tol, "missing", label))
            elif cur < base_value - tol:
                out.rows.append(Row(key, metric, base_value, cur, tol, "regressed", label))
            elif cur > base_value + tol:
                status = "changed" if exact else "improved"
                why = "deterministic: refresh the snapshot if intended" if exact else label
                out.rows.append(Row(key, metric, base_value, cur, tol, status, why))
            else:
                out.rows.append(Row(key, metric, base_value, cur, tol, "ok", label))
    if not out.rows:
        out.problem = (f"nothing compared: none of the {len(entries)} baseline entries has a metric "
                       "to check (each was skipped: no metrics, or not ok in both)")
    return out


def current_metric(r: ResultFile, metric: str) -> float | None:
    """A metric of a result; ``tag:<tag>:<metric>`` reads its per-tag breakdown."""
    if metric.startswith(TAG_PREFIX):
        tag, _, name = metric.removeprefix(TAG_PREFIX).rpartition(":")
        return r.metrics_by_tag.get(tag, {}).get(name)
    return r.metrics.get(metric)


def _label(r: ResultFile) -> str:
    return "random-init: catches code changes only" if r.random_init else ""


def _entry(r: ResultFile) -> dict[str, Any]:
    return {"retriever": r.retriever, "dataset": r.dataset, "split": r.split_key,
            "metrics": r.metrics, "status": r.status, "label": _label(r)}


def _held(r: ResultFile, policy: GatePolicy) -> dict[str, Any]:
    """A snapshot result as the gate holds it: the policy's metrics and per-tag metrics, in
    an exact two-sided band (deterministic) or with a one-sided tolerance."""
    metrics = {m: r.metrics[m] for m in policy.metrics if m in r.metrics}
    for tag, values in sorted(r.metrics_by_tag.items()):
        metrics.update({f"{TAG_PREFIX}{tag}:{m}": values[m] for m in policy.tag_metrics
                        if m in values})
    exact = r.retriever in policy.deterministic
    return {**_entry(r), "metrics": metrics, "band": EXACT if exact else "drop",
            "tolerance": policy.exact_tolerance if exact else policy.tolerance}


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
