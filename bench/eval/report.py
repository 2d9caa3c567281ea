"""Leaderboard reports from result files: Markdown, CSV, JSON and a self-contained HTML page.

Rows are sorted by the dataset's main score. Unavailable, failed and random-init rows are
shown as such and never ranked: a random-init model's accuracy is not a result.
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
CORPUS_COLUMNS = ("video-R@1", "video-R@10", "moment-R@1@0.5", "moment-R@10@0.5")
QVH_MAIN = "MR-full-mAP"


def main_score(r: ResultFile) -> str:
    """The metric a dataset's leaderboard is sorted by."""
    if r.mode == "corpus":
        return "moment-R@1@0.5" if "moment-R@1@0.5" in r.metrics else "video-R@1"
    return QVH_MAIN if QVH_MAIN in r.metrics else "R1@0.5"


def rankable(r: ResultFile) -> bool:
    return r.status == "ok" and not r.random_init


def note(r: ResultFile, limit: int = 160) -> str:
    if r.status != "ok":
        text = f"{r.status}: {r.reason or ''}".strip()
        return text if len(text) <= limit else text[: limit - 1] + "…"
    if r.random_init:
        return "random-init weights: tests the code, not a result"
    return ""


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
        rows.sort(key=lambda r: (not rankable(r), -(r.metrics.get(main_score(r), -1.0)), r.retriever))
    return dict(sorted(groups.items()))


def fmt_metric(v: float | None, digits: int = 3) -> str:
    """A metric for display: ``digits`` decimals, ``–`` when missing or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def leaderboard_rows(rows: Sequence[ResultFile]) -> list[dict[str, Any]]:
    """Flat rows of one group, with rank (None when not ranked)."""
    out, rank = [], 0
    for r in rows:
        ranked = rankable(r)
        if ranked:
            rank += 1
        cols = CORPUS_COLUMNS if r.mode == "corpus" else COLUMNS
        row: dict[str, Any] = {"rank": rank if ranked else None, "retriever": r.retriever,
                               "family": r.family, "dataset": r.dataset, "split": r.split_key,
                               "main_metric": main_score(r), "main": r.metrics.get(main_score(r)),
                               "p50_ms": p50_ms(r), "index_x_realtime": index_speed(r),
                               "device": r.provenance.get("device"), "status": r.status,
                               "random_init": r.random_init, "note": note(r)}
        for c in cols:
            row[c] = r.metrics.get(c)
        out.append(row)
    return out


def markdown(results: Sequence[ResultFile]) -> str:
    """The leaderboard as Markdown: one table per dataset and split."""
    parts = ["# SceneBench leaderboard", ""]
    for (dataset, split), rows in group(results).items():
        cols = CORPUS_COLUMNS if split.endswith("-corpus") else COLUMNS
        main = main_score(rows[0])
        parts.append(f"## {dataset} · {split} (sorted by {main})")
        parts.append("")
        header = ["#", "retriever", "family", main, *[c for c in cols if c != main],
                  "p50 query ms", "index × realtime", "note"]
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "|".join("---" for _ in header) + "|")
        for row in leaderboard_rows(rows):
            cells = [str(row["rank"]) if row["rank"] else "–", f"`{row['retriever']}`", row["family"],
                     fmt_metric(row["main"]), *[fmt_metric(row.get(c)) for c in cols if c != main],
                     fmt_metric(row["p50_ms"], 1), fmt_metric(row["index_x_realtime"], 1), row["note"]]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    if len(parts) == 2:
        parts.append("No results yet: run `python -m bench run`.")
    return "\n".join(parts) + "\n"


def write_csv(results: Sequence[ResultFile], path: Path) -> None:
    rows = [row for g in group(results).values() for row in leaderboard_rows(g)]
    fields = ["rank", "retriever", "family", "dataset", "split", "main_metric", "main",
              *COLUMNS, *CORPUS_COLUMNS, "p50_ms", "index_x_realtime", "device", "status",
              "random_init", "note"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)


# --- plots -------------------------------------------------------------------------------

def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(results: Sequence[ResultFile]) -> dict[str, str]:
    """Named base64 PNGs: accuracy vs latency and vs index cost, recall at IoU, tags, langs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    for (dataset, split), rows in group(results).items():
        ok = [r for r in rows if r.status == "ok"]
        if not ok:
            continue
        main = main_score(ok[0])
        tag = f"{dataset} · {split}"
        for name, xget, xlabel in (("latency", p50_ms, "p50 query latency (ms, log)"),
                                   ("index", index_speed, "index speed (video s per wall s, log)")):
            fig, ax = plt.subplots(figsize=(6, 4))
            for r in ok:
                x, y = xget(r), r.metrics.get(main)
                if x is None or y is None or x <= 0:
                    continue
                ax.scatter([x], [y], marker="x" if r.random_init else "o",
                           color="grey" if r.random_init else None)
                ax.annotate(r.retriever + (" (random-init)" if r.random_init else ""), (x, y),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(main)
            ax.set_title(f"{tag}: {main} vs {name}")
            out[f"{tag} · accuracy vs {name}"] = _png(fig)
        if not split.endswith("-corpus"):
            fig, ax = plt.subplots(figsize=(7, 4))
            thresholds = ("R1@0.3", "R1@0.5", "R1@0.7")
            width = 0.8 / max(1, len(ok))
            for i, r in enumerate(ok):
                vals = [r.metrics.get(t, 0.0) for t in thresholds]
                ax.bar([j + i * width for j in range(len(thresholds))], vals, width,
                       label=r.retriever + (" (random-init)" if r.random_init else ""),
                       hatch="//" if r.random_init else None)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(thresholds))], thresholds)
            ax.set_ylim(0, 1)
            ax.set_ylabel("recall")
            ax.set_title(f"{tag}: recall at IoU thresholds")
            ax.legend(fontsize=6)
            out[f"{tag} · recall at IoU"] = _png(fig)
        for attr, title in (("metrics_by_tag", "tag"), ("metrics_by_lang", "language")):
            keys = sorted({k for r in ok for k in getattr(r, attr)})
            if not keys:
                continue
            fig, ax = plt.subplots(figsize=(7, 4))
            width = 0.8 / max(1, len(ok))
            for i, r in enumerate(ok):
                vals = [getattr(r, attr).get(k, {}).get(main, 0.0) for k in keys]
                ax.bar([j + i * width for j in range(len(keys))], vals, width, label=r.retriever,
                       hatch="//" if r.random_init else None)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], keys)
            ax.set_ylim(0, 1)
            ax.set_ylabel(main)
            ax.set_title(f"{tag}: {main} by {title}")
            ax.legend(fontsize=6)
            out[f"{tag} · by {title}"] = _png(fig)
    return out


def html_page(results: Sequence[ResultFile], images: dict[str, str]) -> str:
    """A self-contained page: tables and PNGs embedded as data URLs."""
    body = ["<h1>SceneBench leaderboard</h1>"]
    for (dataset, split), rows in group(results).items():
        cols = CORPUS_COLUMNS if split.endswith("-corpus") else COLUMNS
        main = main_score(rows[0])
        body.append(f"<h2>{html.escape(dataset)} · {html.escape(split)} "
                    f"<small>(sorted by {html.escape(main)})</small></h2>")
        head = ["#", "retriever", "family", main, *[c for c in cols if c != main],
                "p50 query ms", "index × realtime", "note"]
        body.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
        for row in leaderboard_rows(rows):
            cls = "" if row["rank"] else ' class="unranked"'
            cells = [str(row["rank"] or "–"), row["retriever"], row["family"], fmt_metric(row["main"]),
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
