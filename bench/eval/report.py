"""Leaderboard reports from result files: Markdown, CSV, JSON and a self-contained HTML page.

Rows are sorted by the dataset's main score. Unavailable, failed and random-init rows are
shown as such and never ranked: a random-init model's accuracy is not a result. Chance rows
(the ``chance`` family) are shown under the ranked ones as floors, so every number has its
reference, and are never ranked either.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.eval.results import ResultFile, iter_results

COLUMNS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU", "mAP")
CONFIDENCE_COLUMNS = ("false_alarm", "confident_hit@0.5")
"""Shown where a set has absent queries and the configuration a calibrated threshold."""
FLOOR_FAMILY = "chance"
CORPUS_COLUMNS = ("video-R@1", "video-R@10", "moment-R@1@0.5", "moment-R@10@0.5")
TAGGING_COLUMNS = ("top1", "top5", "top10", "macro_f1")
"""Columns of a tagging set's table (zero-shot; a trained probe is named in the note)."""
QVH_MAIN = "MR-full-mAP"


def main_score(r: ResultFile) -> str:
    """The metric a dataset's leaderboard is sorted by."""
    if r.task == "tagging":
        return "top1"
    if r.mode == "corpus":
        return "moment-R@1@0.5" if "moment-R@1@0.5" in r.metrics else "video-R@1"
    return QVH_MAIN if QVH_MAIN in r.metrics else "R1@0.5"


def is_floor(r: ResultFile) -> bool:
    """A chance row: what guessing scores, shown as the floor under the methods."""
    return r.family == FLOOR_FAMILY


def rankable(r: ResultFile) -> bool:
    return r.status == "ok" and not r.random_init and not is_floor(r)


def note(r: ResultFile, limit: int = 160) -> str:
    if r.status != "ok":
        text = f"{r.status}: {r.reason or ''}".strip()
        return text if len(text) <= limit else text[: limit - 1] + "…"
    if r.random_init:
        return "random-init weights: tests the code, not a result"
    if is_floor(r):
        return "chance floor: what guessing scores, not a method"
    probe = r.probe or {}
    if r.task == "tagging" and "mean" in probe:
        return (f"trained linear probe: top1 {probe['mean']['top1']:.3f} ± {probe['ci95']['top1']:.3f} "
                f"({probe['folds']}-fold)")
    if r.calibration is not None and r.calibration.status == "uncalibrated" and any(
            c in r.metrics for c in CONFIDENCE_COLUMNS):
        return "no confidence threshold"
    return ""


def columns(rows: Sequence[ResultFile]) -> tuple[str, ...]:
    """The metric columns of one group: the mode's, plus the confidence ones where any row has them."""
    if rows and rows[0].task == "tagging":
        return TAGGING_COLUMNS
    base = CORPUS_COLUMNS if rows and rows[0].mode == "corpus" else COLUMNS
    return (*base, *(c for c in CONFIDENCE_COLUMNS if any(c in r.metrics for r in rows)))


def p50_ms(r: ResultFile) -> float | None:
    v = r.timing.get("queries", {}).get("p50_s")
    return None if v is None else 1000.0 * float(v)


def index_speed(r: ResultFile) -> float | None:
    v = r.timing.get("video_s_per_wall_s")
    return None if v is None else float(v)


def group(results: Sequence[ResultFile]) -> dict[tuple[str, str], list[ResultFile]]:
    """(dataset, split_key) -> rows sorted: ranked rows by main score, then the unranked."""
    # One row per configuration: the newest result (older revisions stay on disk, unshown).
    latest: dict[tuple[str, str, str], ResultFile] = {}
    for r in results:
        key = (r.dataset, r.split_key, r.retriever)
        old = latest.get(key)
        if old is None or (r.created_at or "", r.config_revision) > (old.created_at or "",
                                                                     old.config_revision):
            latest[key] = r
    groups: dict[tuple[str, str], list[ResultFile]] = defaultdict(list)
    for r in latest.values():
        groups[(r.dataset, r.split_key)].append(r)
    for rows in groups.values():
        # Ranked methods first, then the chance floors, then rows that are not results.
        rows.sort(key=lambda r: (0 if rankable(r) else 1 if is_floor(r) and r.status == "ok" else 2,
                                 -(r.metrics.get(main_score(r), -1.0)), r.retriever))
    return dict(sorted(groups.items()))


def fmt_metric(v: float | None, digits: int = 3) -> str:
    """A metric for display: ``digits`` decimals, ``–`` when missing or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def leaderboard_rows(rows: Sequence[ResultFile]) -> list[dict[str, Any]]:
    """Flat rows of one group, with rank (None when not ranked)."""
    out, rank = [], 0
    cols = columns(rows)
    for r in rows:
        ranked = rankable(r)
        if ranked:
            rank += 1
        row: dict[str, Any] = {"rank": rank if ranked else None, "retriever": r.retriever,
                               "family": r.family, "floor": is_floor(r),
                               "dataset": r.dataset, "split": r.split_key,
                               "main_metric": main_score(r), "main": r.metrics.get(main_score(r)),
                               "p50_ms": p50_ms(r), "index_x_realtime": index_speed(r),
                               "device": r.provenance.get("device"), "status": r.status,
                               "random_init": r.random_init, "note": note(r)}
        for c in cols:
            row[c] = r.metrics.get(c)
        if r.task == "tagging":  # grounding rows keep their shape
            row["task"] = "tagging"
        out.append(row)
    return out


def markdown(results: Sequence[ResultFile]) -> str:
    """The leaderboard as Markdown: one table per dataset and split."""
    parts = ["# SceneBench leaderboard", ""]
    for (dataset, split), rows in group(results).items():
        cols = columns(rows)
        main = main_score(rows[0])
        task = " · tagging" if rows[0].task == "tagging" else ""
        parts.append(f"## {dataset} · {split}{task} (sorted by {main})")
        parts.append("")
        header = ["#", "retriever", "family", main, *[c for c in cols if c != main],
                  "p50 query ms", "index × realtime", "note"]
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "|".join("---" for _ in header) + "|")
        for row in leaderboard_rows(rows):
            cells = [str(row["rank"]) if row["rank"] else "floor" if row["floor"] else "–",
                     f"`{row['retriever']}`", row["family"],
                     fmt_metric(row["main"]), *[fmt_metric(row.get(c)) for c in cols if c != main],
                     fmt_metric(row["p50_ms"], 1), fmt_metric(row["index_x_realtime"], 1), row["note"]]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    if len(parts) == 2:
        parts.append("No results yet: run `python -m bench run`.")
    return "\n".join(parts) + "\n"


def write_csv(results: Sequence[ResultFile], path: Path) -> None:
    rows = [row for g in group(results).values() for row in leaderboard_rows(g)]
    tagging = [*TAGGING_COLUMNS, "task"] if any(r.task == "tagging" for r in results) else []
    fields = ["rank", "retriever", "family", "dataset", "split", "main_metric", "main",
              *COLUMNS, *CORPUS_COLUMNS, *CONFIDENCE_COLUMNS, *tagging, "p50_ms", "index_x_realtime",
              "device", "status", "random_init", "floor", "note"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)


# --- plots -------------------------------------------------------------------------------

def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width_in: float, height_in: float) -> Any:
    # A bare Figure (no pyplot): thread-safe, nothing left registered to close.
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _label(r: ResultFile) -> str:
    return r.retriever + (" (random-init)" if r.random_init else " (chance floor)" if is_floor(r)
                          else "")


def _legend(ax: Any) -> None:
    # Outside the axes, to the right: names never sit on points, bars or each other.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _bars(ax: Any, ok: Sequence[ResultFile], keys: Sequence[str],
          value: Any) -> None:
    width = 0.8 / max(1, len(ok))
    for i, r in enumerate(ok):
        floor = is_floor(r)
        ax.bar([j + i * width for j in range(len(keys))], [value(r, k) for k in keys], width,
               label=_label(r), color="lightgrey" if floor else None,
               edgecolor="grey" if floor else None,
               hatch="//" if r.random_init else ".." if floor else None)
    rotate = len(keys) > 4
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], keys,
                  rotation=30 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
    ax.set_ylim(0, 1)
    _legend(ax)


def plot_figures(results: Sequence[ResultFile]) -> dict[str, Any]:
    """Named matplotlib Figures: accuracy vs latency and vs index cost, recall at IoU, tags,
    languages. Method names are in a legend beside each plot (never written on the points),
    chance floors are grey dashed lines or dotted grey bars."""
    out: dict[str, Any] = {}
    for (dataset, split), rows in group(results).items():
        ok = [r for r in rows if r.status == "ok"]
        if not ok:
            continue
        main = main_score(ok[0])
        tag = f"{dataset} · {split}"
        markers = "osD^vP*Xh<>p"
        for name, xget, xlabel in (("latency", p50_ms, "p50 query latency (ms, log)"),
                                   ("index", index_speed, "index speed (video s per wall s, log)")):
            fig = _figure(7.5, 4)
            ax = fig.add_subplot()
            shown = 0
            for i, r in enumerate(ok):
                x, y = xget(r), r.metrics.get(main)
                if y is not None and is_floor(r):
                    ax.axhline(y, color="grey", linestyle="--", linewidth=1, label=_label(r))
                    continue
                if x is None or y is None or x <= 0:
                    continue
                shown += 1
                ax.scatter([x], [y], marker="x" if r.random_init else markers[i % len(markers)],
                           color="grey" if r.random_init else None, label=_label(r))
            if not shown:
                continue
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(main)
            ax.set_title(f"{tag}: {main} vs {name}", fontsize=9)
            _legend(ax)
            out[f"{tag} · accuracy vs {name}"] = fig
        if not split.endswith("-corpus") and ok[0].task != "tagging":
            fig = _figure(7.5, 4)
            ax = fig.add_subplot()
            _bars(ax, ok, ("R1@0.3", "R1@0.5", "R1@0.7"), lambda r, k: r.metrics.get(k, 0.0))
            ax.set_ylabel("recall")
            ax.set_title(f"{tag}: recall at IoU thresholds", fontsize=9)
            out[f"{tag} · recall at IoU"] = fig
        for attr, title in (("metrics_by_tag", "tag"), ("metrics_by_lang", "language")):
            keys = sorted({k for r in ok for k, v in getattr(r, attr).items() if main in v})
            if not keys:
                continue
            fig = _figure(7.5, 4.2)
            ax = fig.add_subplot()
            _bars(ax, ok, keys, lambda r, k, a=attr, m=main: getattr(r, a).get(k, {}).get(m, 0.0))
            ax.set_ylabel(main)
            ax.set_title(f"{tag}: {main} by {title}", fontsize=9)
            out[f"{tag} · by {title}"] = fig
    return out


def plots(results: Sequence[ResultFile]) -> dict[str, str]:
    """:func:`plot_figures` as named base64 PNGs."""
    return {name: _png(fig) for name, fig in plot_figures(results).items()}


def html_page(results: Sequence[ResultFile], images: dict[str, str]) -> str:
    """A self-contained page: tables and PNGs embedded as data URLs."""
    body = ["<h1>SceneBench leaderboard</h1>"]
    for (dataset, split), rows in group(results).items():
        cols = columns(rows)
        main = main_score(rows[0])
        body.append(f"<h2>{html.escape(dataset)} · {html.escape(split)} "
                    f"<small>(sorted by {html.escape(main)})</small></h2>")
        head = ["#", "retriever", "family", main, *[c for c in cols if c != main],
                "p50 query ms", "index × realtime", "note"]
        body.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
        for row in leaderboard_rows(rows):
            cls = "" if row["rank"] else ' class="unranked"'
            cells = [str(row["rank"] or ("floor" if row["floor"] else "–")), row["retriever"],
                     row["family"], fmt_metric(row["main"]),
                     *[fmt_metric(row.get(c)) for c in cols if c != main], fmt_metric(row["p50_ms"], 1),
                     fmt_metric(row["index_x_realtime"], 1), row["note"]]
            body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                        + "</tr>")
        body.append("</table>")
    for title, data in images.items():
        body.append(f"<figure><img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,{data}\">"
                    f"<figcaption>{html.escape(title)}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:4px 8px;font-size:14px}tr.unranked{color:#888}figure{display:inline-block;"
             "margin:1em}img{max-width:520px}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>SceneBench leaderboard"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def load_all(results_dir: Path) -> list[ResultFile]:
    return [r for _, r in iter_results(results_dir)]


def write_report(results_dir: Path, out: Path, *, with_plots: bool = True) -> list[Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.json`` and ``index.html``."""
    results = load_all(results_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "leaderboard.md"
    md.write_text(markdown(results), encoding="utf-8")
    csv_path = out / "leaderboard.csv"
    write_csv(results, csv_path)
    js = out / "leaderboard.json"
    js.write_text(json.dumps({f"{d}/{s}": leaderboard_rows(rows)
                              for (d, s), rows in group(results).items()},
                             indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    page = out / "index.html"
    page.write_text(html_page(results, plots(results) if with_plots else {}), encoding="utf-8")
    return [md, csv_path, js, page]


def best_configuration(results_dir: Path, dataset: str = "synthetic-v1",
                       split: str = "test") -> str | None:
    """The top ranked configuration of a leaderboard (what the demo uses by default)."""
    from bench.errors import BadInput

    try:
        results = load_all(results_dir)
    except BadInput:  # no results directory yet is a normal state for the demo
        return None
    rows = group(results).get((dataset, split), [])
    ranked = [r for r in rows if rankable(r)]
    return ranked[0].retriever if ranked else None
