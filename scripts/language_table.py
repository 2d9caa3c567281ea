"""Per-language accuracy over the queries that text can answer (speech, onscreen-text,
cross-lingual), from the result files and predictions of ``python -m bench run``.

Visual and multi queries need the visual families, so the text configurations are judged
without them. Prints a Markdown table: grounding R1@0.5 and corpus moment-R@1@0.5 per query
language and for the ``cross-lingual`` tag.

    python scripts/language_table.py --results DIR --dataset SET_DIR [--retriever NAME ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets.io import load_predictions, load_queries  # noqa: E402
from bench.eval import metrics as m  # noqa: E402
from bench.eval.results import load_result, predictions_path  # noqa: E402

TEXT_TAGS = frozenset({"speech", "onscreen-text", "cross-lingual"})
LANGS = ("en", "ja", "zh", "ru", "pt")


def scores(queries: list, predictions: list, mode: str) -> tuple[float, int]:
    by_qid = {p.qid: p for p in predictions}
    if mode == "grounding":
        return m.grounding_metrics(queries, by_qid).get("R1@0.5", float("nan")), len(queries)
    return m.corpus_metrics(queries, by_qid).get("moment-R@1@0.5", float("nan")), len(queries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--retriever", nargs="*", default=None)
    args = ap.parse_args()
    queries = [q for q in load_queries(args.dataset / "queries.jsonl") if TEXT_TAGS & set(q.tags or ())]
    header = ["configuration", "mode", *LANGS, "cross-lingual", "all text"]
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "---:|" * (len(header) - 2))
    rows = []
    for path in sorted(args.results.rglob("*.json")):
        result = load_result(path)
        if result.status != "ok" or (args.retriever and result.retriever not in args.retriever):
            continue
        if Path(result.dataset).name != args.dataset.name and result.dataset != args.dataset.name:
            continue
        preds = load_predictions(predictions_path(args.results, result))
        cells = []
        for group in [*LANGS, "cross-lingual", "all"]:
            subset = [q for q in queries if group == "all" or q.lang == group
                      or (group == "cross-lingual" and "cross-lingual" in (q.tags or ()))]
            if result.mode == "grounding":
                subset = [q for q in subset if q.vid is not None]
            value, n = scores(subset, preds, result.mode)
            cells.append(f"{value:.2f} ({n})" if n else "–")
        rows.append((result.retriever, result.mode, cells))
    for name, mode, cells in sorted(rows):
        print(f"| {name} | {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
