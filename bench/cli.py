"""``python -m bench <verb>``: the stable command-line surface (see DESIGN.md, "CLI verbs").

``--json`` prints one JSON document on stdout and nothing else there; logs go to stderr.
Exit codes: 0 ok, 1 a check failed, 2 bad input or unavailable (with a one-line reason),
3 a backend (LLM endpoint) failed after its retries, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import BackendError, BadInput, BenchError
from bench.evidence import fmt_window

log = logging.getLogger("bench")


def _emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n")


def _parse_columns(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise BadInput(f"--map expects FIELD=COLUMN (e.g. query=sentence), got {pair!r}")
        out[field] = column
    return out


# --- verbs -------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "datasets":
        from bench.datasets import describe

        rows = describe()
        if args.json:
            _emit_json({"datasets": rows})
        else:
            for r in rows:
                note = "needs --input" if r["needs_input"] == "true" else "built in"
                print(f"{r['name']:16s} {note}")
        return 0
    from bench.retrievers import load_configs

    configs = load_configs()
    if args.json:
        _emit_json({"retrievers": [
            {"name": c.name, "family": c.family, "revision": c.revision, "tags": c.tags,
             "model": c.model.id if c.model else None, "description": c.description}
            for c in configs.values()]})
    else:
        for c in configs.values():
            tags = f" [{', '.join(c.tags)}]" if c.tags else ""
            print(f"{c.name:28s} {c.family:13s} {c.model.id if c.model else '-'}{tags}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from bench.datasets import BuildOptions, build

    opts = BuildOptions(input=args.input, videos=args.videos, limit=args.limit,
                        columns=_parse_columns(args.map), lines_per_query=args.lines_per_query,
                        hold_out_wording=args.hold_out_wording, force=args.force,
                        **({"split": args.split} if args.split else {}))
    from bench.types import QuerySet

    qs = build(args.name, Path(args.out), opts)
    doc: dict[str, Any] = {"dataset": qs.name, "out": str(args.out), "videos": len(qs.videos)}
    if isinstance(qs, QuerySet):
        doc["queries"] = len(qs.queries)
        what = f"{doc['queries']} queries"
    else:
        doc["task"] = "tagging"
        doc["labels"] = len(qs.taxonomy.labels)
        what = f"{doc['labels']} labels"
    if args.json:
        _emit_json(doc)
    else:
        print(f"built {args.name}: {doc['videos']} videos, {what} -> {args.out}")
    return 0


ARTEFACTS_ENV = "SCENEBENCH_ARTEFACTS"


def _engine(args: argparse.Namespace) -> Any:
    """The ``--engine`` / ``--ray-address`` choice, checked before anything is built."""
    from bench.store.engines import EngineConfig

    engine = EngineConfig(kind=args.engine, ray_address=args.ray_address)
    engine.check()
    if args.artefacts:
        from bench.store.location import Location

        Location(args.artefacts).check_writable()
        os.environ[ARTEFACTS_ENV] = args.artefacts  # the store, and Ray's workers, see it
    return engine


def cmd_index(args: argparse.Namespace) -> int:
    from bench.eval.runner import index_dataset

    doc = index_dataset(args.dataset, args.retriever, device=args.device, engine=_engine(args))
    if args.json:
        _emit_json(doc)
    else:
        print(f"indexed {doc['videos']} videos of {doc['dataset']} with {doc['retriever']} "
              f"in {doc['wall_s']:.1f} s")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from bench.types import QueryInput, check_utf8
    from bench.workspace import Workspace, videos_from_files

    if args.query is not None:
        check_utf8(args.query, "--query")
    if not (args.query and args.query.strip()) and args.image is None:
        raise BadInput("give a --query text or an --image to search for")
    videos = videos_from_files([Path(v) for v in args.video])
    query = QueryInput(text=args.query, image=args.image)
    workspace = Workspace(device=args.device)
    (result,), _ = workspace.search(args.retriever, videos, [query], top_k=args.top_k,
                                    vids=[v.vid for v in videos])
    if result.backend_failed:
        # No moments because the backend is down: not an answer, so no "no moments found".
        first = result.backend_errors[0]
        raise BackendError(f"{args.retriever}: {first}", unreachable=first.unreachable)
    moments = result.moments
    if args.json:
        from bench.eval.snapshot import snapshot_results
        from bench.serving.confidence import calibrations, mark

        # The threshold the committed snapshot holds for this configuration (None: none).
        calibration = calibrations(snapshot_results(), "").get(args.retriever)
        moments = mark(moments, calibration, args.query)
        doc = {"query": args.query, "image": args.image, "retriever": args.retriever,
               "moments": [{"vid": m.vid, "start": m.start, "end": m.end, "score": m.score,
                            "confident": m.confident, "evidence": m.evidence.to_dict()}
                           for m in moments]}
        if result.reason:
            doc["reason"] = result.reason
        _emit_json(doc)
        return 0
    if not moments:
        print(f"no moments found: {result.reason}" if result.reason else "no moments found")
    for i, m in enumerate(moments, start=1):
        print(f"{i:2d}. {m.vid}  {fmt_window(m.start, m.end)}  score {m.score:.4f}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from bench.datasets.tagging import load_taxonomy
    from bench.tagging.files import tag_files, tags_doc
    from bench.workspace import Workspace

    if args.top_k < 1:
        raise BadInput(f"--top-k must be at least 1, got {args.top_k}")
    taxonomy = load_taxonomy(Path(args.taxonomy))
    workspace = Workspace(device=args.device)
    _, tagged = tag_files(workspace, [Path(v) for v in args.video], taxonomy, args.retriever,
                          aggregation=args.aggregate)
    doc = tags_doc(taxonomy, tagged, args.retriever, args.top_k, args.video)
    if args.json:
        _emit_json(doc)
        return 0
    lang = args.lang
    for row in doc["videos"]:
        print(row["path"])
        if not row["labels"]:
            print(f"  no labels: {row['reason']}")
        for i, lab in enumerate(row["labels"], start=1):
            name = lab["names"].get(lang) or next(iter(lab["names"].values()))
            print(f"  {i}. {lab['id']} ({name})  score {lab['score']:.4f}  {lab['evidence']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.eval.runner import Mode, run

    modes: tuple[Mode, ...] = ("grounding", "corpus") if args.mode == "both" else (args.mode,)
    results = run(args.dataset or [], args.retriever or [], out=Path(args.out), modes=modes,
                  device=args.device, top_k=args.top_k, limit=args.limit,
                  progress=not args.json, include_tiny=args.include_tiny, engine=_engine(args))
    from bench.eval.results import result_path

    rows = []
    for r in results:
        row = {"retriever": r.retriever, "dataset": r.dataset, "split": r.split, "mode": r.mode,
               "status": r.status, "metrics": r.metrics, "metrics_by_tag": r.metrics_by_tag,
               "metrics_by_lang": r.metrics_by_lang, "timing": r.timing,
               "random_init": r.random_init, "results_path": str(result_path(Path(args.out), r))}
        if r.task == "tagging":  # grounding rows keep their shape
            row = {"task": "tagging", **row, "metrics_by_class": r.metrics_by_class,
                   "probe": r.probe, "video_errors": r.query_errors}
            del row["mode"]
        if r.reason:
            row["reason"] = r.reason
        rows.append(row)
    if args.json:
        _emit_json({"results": rows})
        return 0
    print(f"{'retriever':28s} {'dataset':14s} {'mode':9s} {'status':11s} "
          f"{'R1@0.5':>7s} {'R1@0.7':>7s} {'mIoU':>7s} {'p50 ms':>8s}")
    for r in results:
        if r.task == "tagging":
            print(_tagging_line(r))
            continue
        m = r.metrics
        p50 = r.timing.get("queries", {}).get("p50_s")
        flag = " (random-init)" if r.random_init else ""
        if r.status == "ok":
            print(f"{r.retriever:28s} {r.dataset:14s} {r.mode:9s} {r.status:11s} "
                  f"{m.get('R1@0.5', float('nan')):7.3f} {m.get('R1@0.7', float('nan')):7.3f} "
                  f"{m.get('mIoU', float('nan')):7.3f} "
                  f"{(p50 or 0) * 1000:8.1f}{flag}")
        else:
            print(f"{r.retriever:28s} {r.dataset:14s} {r.mode:9s} {r.status:11s} {r.reason}")
    print(f"results written to {args.out}/")
    return 0


def _tagging_line(r: Any) -> str:
    """One line of ``run``'s table for a tagging result: zero-shot top-1/top-5/macro-F1 and,
    apart, the trained probe's top-1 (mean ± 95% interval over folds)."""
    head = f"{r.retriever:28s} {r.dataset:14s} {'tagging':9s} {r.status:11s} "
    if r.status != "ok":
        return head + str(r.reason)
    m = r.metrics
    flag = " (random-init)" if r.random_init else ""
    line = (head + f"top1 {m.get('top1', float('nan')):.3f}  top5 {m.get('top5', float('nan')):.3f}  "
            f"macro-F1 {m.get('macro_f1', float('nan')):.3f}")
    probe = r.probe or {}
    if "mean" in probe:
        line += (f"  | trained probe top1 {probe['mean']['top1']:.3f} ± {probe['ci95']['top1']:.3f} "
                 f"({probe['folds']} folds)")
    return line + flag


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bench.eval.evaluate import evaluate_files, format_table

    result = evaluate_files(Path(args.gt), Path(args.pred), require_all=not args.allow_missing)
    if args.json:
        _emit_json(result)
    else:
        print(format_table(result), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.eval.report import write_report

    paths = write_report(Path(args.results), Path(args.out))
    if args.json:
        _emit_json({"files": [str(p) for p in paths]})
    else:
        for p in paths:
            print(p)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.eval.regression import compare

    outcome = compare(Path(args.results), Path(args.baseline))
    if args.json:
        _emit_json(outcome.as_dict())
    else:
        print(outcome.table())
    if outcome.problem is not None:
        print(f"error: {outcome.problem}", file=sys.stderr)
    return 0 if outcome.ok else 1


def cmd_mock_run(args: argparse.Namespace) -> int:
    from bench.eval.runner import mock_run

    doc = mock_run(args.retriever, device=args.device)
    if args.json:
        _emit_json(doc)
    else:
        flag = " (random-init weights: numbers are not results)" if doc.get("random_init") else ""
        print(f"{doc['retriever']}: {doc['status']}{flag}")
        if doc.get("reason"):
            print(f"  {doc['reason']}")
        for k, v in sorted((doc.get("metrics") or {}).items()):
            if k in {"R1@0.5", "R1@0.7", "mIoU"}:
                print(f"  {k} = {v:.3f}")
    return 0 if doc["status"] == "ok" else 1


# --- parser ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench",
                                description="SceneBench: find moments in video by natural language.")
    p.add_argument("--version", action="version", version=f"scenebench {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(func=func)
        sp.add_argument("--json", action="store_true", help="one JSON document on stdout")
        return sp

    sp = add("list", cmd_list, "list registered retriever configurations or datasets")
    sp.add_argument("what", choices=["retrievers", "datasets"])

    sp = add("build", cmd_build, "build a labelled query set (synthetic-v1, adapters, subtitles)")
    sp.add_argument("name", help="builder name (see 'list datasets')")
    sp.add_argument("--out", required=True, help="output directory")
    sp.add_argument("--input", type=Path, help="annotation file, or folder of videos (subtitles)")
    sp.add_argument("--videos", type=Path, help="folder holding the videos")
    sp.add_argument("--split", help="split name (default: guessed from the file name, else test)")
    sp.add_argument("--limit", type=int, help="keep the first N queries")
    sp.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                    help="generic jsonl/csv: canonical field -> input column (repeatable)")
    sp.add_argument("--lines-per-query", type=int, default=1, help="subtitles: lines per query")
    sp.add_argument("--hold-out-wording", action="store_true",
                    help="subtitles: query with a rewording, not the exact line")
    sp.add_argument("--force", action="store_true", help="rebuild even if cached")

    def device_arg(sp: argparse.ArgumentParser, default: str = "auto") -> None:
        sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default=default)

    def engine_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="who computes features: this process (default) or a Ray cluster")
        sp.add_argument("--ray-address", help="Ray cluster to join (host:port, ray://host:port, "
                        "auto); default: start a local one")
        sp.add_argument("--artefacts", metavar="DIR_OR_URL",
                        help="where feature files go: a directory every node mounts, or an fsspec "
                        "URL such as s3://bucket/prefix (default: $SCENEBENCH_ARTEFACTS, else the "
                        "feature store's own directory; its catalog stays local)")

    sp = add("index", cmd_index, "index a dataset's videos into the feature store (cached)")
    sp.add_argument("--dataset", required=True, help="registered name or query-set directory")
    sp.add_argument("--retriever", required=True, help="configuration name or YAML path")
    device_arg(sp)
    engine_args(sp)

    sp = add("search", cmd_search, "search video files for a text or image query")
    sp.add_argument("--video", nargs="+", required=True, help="video file(s)")
    sp.add_argument("--query", help="what to find, in any language")
    sp.add_argument("--image", help="an example image to find instead of / with text")
    sp.add_argument("--retriever", default="bm25-text", help="configuration (default bm25-text)")
    sp.add_argument("--top-k", type=int, default=5)
    device_arg(sp)

    sp = add("tag", cmd_tag, "tag video files into a taxonomy (zero-shot)")
    sp.add_argument("--video", nargs="+", required=True, help="video file(s)")
    sp.add_argument("--taxonomy", required=True, help="taxonomy YAML (labels with names per language)")
    sp.add_argument("--retriever", default="dense-text-use-multilingual",
                    help="configuration whose features tag (default dense-text-use-multilingual)")
    sp.add_argument("--top-k", type=int, default=5, help="labels shown per video")
    sp.add_argument("--aggregate", choices=["first", "mean", "max", "topk"],
                    help="how window scores become a video's (default: max for text families, "
                         "topk for visual ones)")
    sp.add_argument("--lang", default="en", help="language of the label names printed")
    device_arg(sp)

    sp = add("run", cmd_run, "run retrievers on datasets with timing; write versioned results")
    sp.epilog = ("With no --retriever, runs every configuration in models/ except the random-init "
                 "test ones (tagged tiny; name them, or add --include-tiny, to run them). "
                 "Configurations whose weights or backend cannot be had on this machine are "
                 "reported unavailable with the reason.")
    sp.add_argument("--dataset", action="append", help="repeatable; default synthetic-v2")
    sp.add_argument("--retriever", action="append",
                    help="repeatable; default every configuration in models/ except the random-init "
                         "test ones (tagged tiny)")
    sp.add_argument("--include-tiny", action="store_true",
                    help="with no --retriever, also run the random-init test configurations "
                         "(tagged tiny: they exercise the code, their numbers mean nothing)")
    sp.add_argument("--out", default="results", help="results directory (default results/)")
    sp.add_argument("--mode", choices=["grounding", "corpus", "both"], default="both")
    sp.add_argument("--top-k", type=int, default=10)
    sp.add_argument("--limit", type=int, help="first N queries per dataset (quick runs)")
    device_arg(sp)
    engine_args(sp)

    sp = add("evaluate", cmd_evaluate, "score a prediction file against ground truth")
    sp.add_argument("--gt", required=True, help="queries.jsonl (ground truth)")
    sp.add_argument("--pred", required=True, help="predictions.jsonl")
    sp.add_argument("--allow-missing", action="store_true",
                    help="score only the predicted queries (default: a missing one is an error)")

    sp = add("report", cmd_report, "leaderboard (Markdown, CSV, HTML with plots) from results")
    sp.add_argument("--results", default="results")
    sp.add_argument("--out", default="reports")

    sp = add("compare", cmd_compare, "regression gate: compare results with a baseline")
    sp.add_argument("--results", required=True)
    sp.add_argument("--baseline", required=True)

    sp = add("mock-run", cmd_mock_run, "sanity-check a retriever on a tiny built-in set")
    sp.add_argument("--retriever", required=True)
    device_arg(sp, "cpu")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.json else logging.INFO
    if args.verbose:
        level = logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(message)s")
    # bm25s sets its own logger to DEBUG; faiss logs at INFO each CPU extension it cannot load.
    for noisy in ("httpx", "urllib3", "faster_whisper", "jieba", "filelock", "bm25s", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    artefacts_before = os.environ.get(ARTEFACTS_ENV)
    try:
        return int(args.func(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished work is kept in the cache, rerun to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:  # --artefacts holds for this command only (main is also called in-process)
        if artefacts_before is None:
            os.environ.pop(ARTEFACTS_ENV, None)
        else:
            os.environ[ARTEFACTS_ENV] = artefacts_before


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
