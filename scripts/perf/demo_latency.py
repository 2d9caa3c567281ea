"""How fast the Space feels: a search on the indexed embedded set, and the page's first load.

    python scripts/perf/demo_latency.py [--dataset synthetic-v1] [--retriever NAME]
        [--repeats 3] [--loads 6] [--ui-searches 6] [--out scripts/perf/reports/demo_latency.md]

1. In process, with the same library calls the app makes: index the embedded set once
   (cached in the feature store), then time every text query of the set through
   ``bench.search`` (grounding in the query's video, and over every video) and
   through the app's search handlers (search, thumbnails, score plot rendered as an image,
   a fresh session each time, as a new visitor gets). Target: < 1 s.
2. In Chromium (Playwright): ``python demo/app.py`` in a subprocess, once its warm-up is
   done; each load is a new browser context (empty cache). Reports DOMContentLoaded, first
   contentful paint and "ready" (the embedded video list filled in), and a search clicked
   in the page until its cards show. Target: first load < 3 s.

Writes a Markdown report with the command, the machine and its load at the time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.serving.search import DEFAULT_RETRIEVER, demo_dataset, search  # noqa: E402
from bench.serving.sessions import Session  # noqa: E402
from bench.types import QueryInput  # noqa: E402
from demo import handlers  # noqa: E402

CHROMIUM = os.environ.get("SCENEBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50": statistics.median(ms), "p95": pct(ms, 0.95), "max": max(ms),
            "mean": statistics.fmean(ms)}


def machine() -> dict[str, str]:
    from bench.eval.runner import cpu_name

    cpu = cpu_name()
    from importlib import metadata

    versions = {}
    for pkg in ("gradio", "torch", "bm25s", "sentence-transformers", "playwright"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                         text=True, check=False).stdout.strip()
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "platform": platform.platform(terse=True), "git": sha or "?",
            "packages": ", ".join(f"{k} {v}" for k, v in versions.items())}


def load_app_module() -> Any:
    spec = importlib.util.spec_from_file_location("scenebench_demo_app", REPO / "demo" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_process(dataset: str, retriever: str | None, repeats: int) -> dict[str, Any]:
    from bench.eval import report

    app_mod = load_app_module()
    with tempfile.TemporaryDirectory(prefix="demo-latency-") as tmp:
        app = handlers.App(REPO / "results", dataset, "cpu", sessions=Path(tmp) / "sessions")
        t0 = time.perf_counter()
        qs = app.query_set()
        build_s = time.perf_counter() - t0
        corpus = list(app.embedded().values())
        name = retriever or report.best_configuration(app.results_source(), qs.name, qs.split) \
            or DEFAULT_RETRIEVER
        t0 = time.perf_counter()
        app.workspace.index(name, corpus)
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        app.workspace.index(name, corpus)
        reindex_s = time.perf_counter() - t0
        # what the app does at start: one query per language loads the tokenizers
        app.methods = [name]
        t0 = time.perf_counter()
        app_mod.warm_up(app)
        warm_s = time.perf_counter() - t0
        by_vid = {v.vid: v for v in corpus}
        queries = [q for q in qs.queries if q.vid in by_vid and q.query.strip()]
        grounding, everywhere, handler, errors = [], [], [], []
        answered: dict[str, tuple[str, str]] = {}
        for _ in range(repeats):
            for q in queries:
                query = QueryInput(text=q.query, lang=q.lang)
                one = search(app.workspace, name, [by_vid[q.vid or ""]], query, top_k=5,
                                     corpus=corpus)
                every = search(app.workspace, name, corpus, query, top_k=5, corpus=corpus)
                for out in (one, every):
                    if out.error:
                        errors.append(f"{q.qid}: {out.error}")
                grounding.append(one.latency_s)
                if one.moments:
                    answered.setdefault(str(q.qid), (q.vid or "", q.query))
                everywhere.append(every.latency_s)
                sess = Session.open(app.sessions)
                t0 = time.perf_counter()
                result = handlers.on_search(app, sess, [q.vid], q.query, None, name, 5)
                fig = handlers.on_timeline(app, sess, result[3])
                if fig is not None:  # gradio renders the plot to an image before sending it
                    fig.savefig(io.BytesIO(), format="webp")
                handler.append(time.perf_counter() - t0)
                if str(result[1]).startswith(("⚠", "→")):
                    errors.append(f"{q.qid}: {result[1]}")
                sess.cleanup()
        return {"dataset": qs.name, "retriever": name, "videos": len(corpus),
                "video_s": sum(v.duration or 0.0 for v in corpus), "queries": len(queries),
                "build_s": build_s, "index_s": index_s, "reindex_s": reindex_s, "warm_s": warm_s,
                "grounding": summary(grounding), "corpus": summary(everywhere),
                "handler": summary(handler), "errors": errors[:5], "n_errors": len(errors),
                "answered": list(answered.values())}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return time.perf_counter() - t0
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"the app did not answer within {timeout_s:.0f} s")


PAGE_TIMING_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {ttfb: nav.responseStart, dcl: nav.domContentLoadedEventEnd,
          load: nav.loadEventEnd, fcp: fcp ? fcp.startTime : null,
          resources: performance.getEntriesByType('resource').length};
}"""


def in_browser(dataset: str, retriever: str, loads: int,
               searches: list[tuple[str, str]]) -> dict[str, Any]:
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="demo-latency-") as tmp, \
            (Path(tmp) / "app.log").open("wb") as log:
        cmd = [sys.executable, str(REPO / "demo" / "app.py"), "--port", str(port),
               "--dataset", dataset, "--methods", retriever, "--results", str(Path(tmp) / "results"),
               "--device", "cpu"]
        env = {**os.environ, "SCENEBENCH_SESSIONS_DIR": str(Path(tmp) / "sessions"),
               "GRADIO_ANALYTICS_ENABLED": "False"}
        t_start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(url, proc, 180)
            startup_s = time.perf_counter() - t_start
            # Loads are timed on a settled server, as a visitor of a running Space meets it.
            deadline = time.perf_counter() + 1800
            while b"warm-up done" not in (Path(tmp) / "app.log").read_bytes():
                if b"warm-up failed" in (Path(tmp) / "app.log").read_bytes():
                    raise SystemExit("the app's warm-up failed; see its log")
                if time.perf_counter() > deadline or proc.poll() is not None:
                    raise SystemExit("the app did not finish its warm-up")
                time.sleep(0.5)
            warm_s = time.perf_counter() - t_start
            rows, ui = [], []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
                for _ in range(loads):
                    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
                    page = ctx.new_page()
                    t0 = time.perf_counter()
                    page.goto(url, wait_until="domcontentloaded")
                    page.wait_for_selector("#search-btn", state="visible", timeout=60_000)
                    interactive = time.perf_counter() - t0
                    page.wait_for_selector("#videos input[type=checkbox]", timeout=600_000)
                    ready = time.perf_counter() - t0
                    timing = page.evaluate(PAGE_TIMING_JS)
                    rows.append({**timing, "interactive": interactive * 1000, "ready": ready * 1000})
                    ctx.close()
                ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
                page = ctx.new_page()
                page.set_default_timeout(600_000)
                page.goto(url, wait_until="domcontentloaded")
                page.wait_for_selector("#videos input[type=checkbox]")
                # the first search of a session is reported apart, then the timed ones
                for i, (vid, text) in enumerate(searches):
                    boxes = page.locator("#videos input[type=checkbox]")
                    for j in range(boxes.count()):
                        box = boxes.nth(j)
                        if box.is_checked() != (box.get_attribute("name") == vid):
                            box.click()
                    page.fill("#query textarea", text)
                    t0 = time.perf_counter()
                    page.click("#search-btn")
                    # the status names the query, so this waits for this search's answer
                    expect(page.locator("#search-status")).to_contain_text(f"for “{text}”")
                    page.wait_for_selector("#cards img")
                    ui.append((i, time.perf_counter() - t0))
                ctx.close()
                browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    cold = rows[0]
    warm = rows[1:] or rows
    return {"retriever": retriever, "startup_s": startup_s, "warm_s": warm_s, "cold": cold,
            "warm": {k: statistics.median([r[k] for r in warm if r[k] is not None] or [float("nan")])
                     for k in ("ttfb", "fcp", "dcl", "load", "interactive", "ready")},
            "warm_max_ready": max(r["ready"] for r in warm), "loads": len(rows),
            "first_search_s": ui[0][1] if ui else None,
            "ui_search": summary([s for i, s in ui if i > 0]) if len(ui) > 1 else None}


def fmt(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def write_report(path: Path, command: str, mach: dict[str, str], load_before: tuple[float, ...],
                 runs: list[dict[str, Any]], web: dict[str, Any] | None) -> None:
    first = runs[0]
    lines = [
        "# Demo latency", "",
        f"Measured {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} with:", "",
        "```", command, "```", "",
        f"- machine: {mach['cpu']}, {mach['cores']} cores, {mach['platform']}, Python {mach['python']}",
        f"- packages: {mach['packages']}; git {mach['git']}",
        f"- load average when it started: {', '.join(f'{x:.2f}' for x in load_before)} "
        "(1, 5, 15 min; the machine is shared with other work, so read the numbers as upper "
        "bounds)",
        f"- embedded set: **{first['dataset']}**, {first['videos']} videos, "
        f"{first['video_s'] / 60:.1f} min of video, {first['queries']} text queries", "",
        "## Search on the indexed embedded set (in process, CPU)", "",
        "Each configuration indexes the set once (feature-store hits when it was indexed before) "
        "and is warmed up as the app does at start (one query per language loads its "
        "tokenizer), then every text query of the set is searched, grounding in its video and over all "
        "videos, and through the app's search handlers (search, card thumbnails from the "
        "thumbnail sheets the warm-up makes, the score plot rendered as an image), in a new "
        "session each time, as a new visitor gets.", "",
        "| configuration | index s (warm-up s) | what is timed | n | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for run in runs:
        for key, what in (("grounding", "retriever search, grounding in the query's video"),
                          ("corpus", "retriever search over every video of the set"),
                          ("handler", "app search handlers (search, thumbnails, score plot as an image)")):
            st = run[key]
            head = (f"`{run['retriever']}` | {run['index_s']:.1f} ({run['warm_s']:.1f})"
                    if key == "grounding" else " | ")
            lines.append(f"| {head} | {what} | {st['n']} | {st['p50']:.1f} | {st['p95']:.1f} | "
                         f"{st['max']:.1f} |")
        h = run["handler"]
        verdicts.append(f"`{run['retriever']}` **{'met' if h['p95'] < 1000 else 'not met'}** "
                        f"(handler p50 {h['p50']:.0f} ms, p95 {h['p95']:.0f} ms)")
        if run["n_errors"]:
            verdicts.append(f"{run['n_errors']} searches of `{run['retriever']}` reported an "
                            "error, e.g.: " + "; ".join(run["errors"]))
    lines += ["", "Target < 1 s for a search once indexed (judged on the handler's p95): "
              + "; ".join(verdicts) + "."]
    if web is not None:
        cold, warm = web["cold"], web["warm"]
        first_ok = bool(cold["fcp"]) and cold["fcp"] < 3000 and cold["dcl"] < 3000
        ui_ok = cold["interactive"] < 3000
        lines += [
            "", f"## The page in Chromium (`{web['retriever']}`)", "",
            f"`python demo/app.py` in a subprocess: first HTTP 200 {web['startup_s']:.1f} s after "
            f"start, its background warm-up done after {web['warm_s']:.1f} s; then the loads, each "
            "in a new browser context (empty cache), timed from navigation start.", "",
            "| load | TTFB ms | first contentful paint ms | DOMContentLoaded ms | load event ms | "
            "search button visible ms | video list filled (ready) ms |",
            "|---|---|---|---|---|---|---|",
            f"| first | {fmt(cold['ttfb'])} | {fmt(cold['fcp'])} | {fmt(cold['dcl'])} | "
            f"{fmt(cold['load'])} | {fmt(cold['interactive'])} | {fmt(cold['ready'])} |",
            f"| median of the next {web['loads'] - 1} | {fmt(warm['ttfb'])} | {fmt(warm['fcp'])} | "
            f"{fmt(warm['dcl'])} | {fmt(warm['load'])} | {fmt(warm['interactive'])} | "
            f"{fmt(warm['ready'])} |", "",
            f"Target < 3 s to first load: DOMContentLoaded and first contentful paint "
            f"**{'met' if first_ok else 'not met'}** ({fmt(cold['dcl'])} ms and {fmt(cold['fcp'])} ms "
            f"on the first load); the interface drawn (search button visible) "
            f"**{'met' if ui_ok else 'not met'}** ({fmt(cold['interactive'])} ms; the embedded video "
            f"list follows at {fmt(cold['ready'])} ms). Before drawing, Gradio's page fetches "
            f"{cold['resources']} files (component scripts, styles, fonts) from the Python server, "
            "which is most of that wait on this shared 2-core machine.",
        ]
        if web["ui_search"] is not None:
            s = web["ui_search"]
            first_ms = fmt(web["first_search_s"] * 1000)
            lines += ["", "A search clicked in the page until its cards show (end to end: queue, "
                      f"connection, thumbnails, rendering): the first of the session {first_ms} ms, "
                      f"then p50 {s['p50']:.0f} ms, p95 "
                      f"{s['p95']:.0f} ms, max {s['max']:.0f} ms over {s['n']}."]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=demo_dataset())
    parser.add_argument("--retriever", action="append", default=None,
                        help="configuration, repeatable; the first one also drives the browser "
                             "part (default: best on the leaderboard, else bm25-text)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the set's queries")
    parser.add_argument("--loads", type=int, default=6, help="page loads (first + warm)")
    parser.add_argument("--ui-searches", type=int, default=6)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "scripts" / "perf" / "reports" / "demo_latency.md")
    args = parser.parse_args(argv)
    words = [str(Path(__file__).resolve().relative_to(REPO)),
             *(argv if argv is not None else sys.argv[1:])]
    command = "python " + " ".join(shlex.quote(a) for a in words)
    if os.environ.get("SCENEBENCH_CACHE"):
        command = f"SCENEBENCH_CACHE={shlex.quote(os.environ['SCENEBENCH_CACHE'])} {command}"
    load_before = os.getloadavg()
    mach = machine()
    runs = []
    for name in args.retriever or [None]:
        runs.append(in_process(args.dataset, name, args.repeats))
        print(f"in process: { {k: v for k, v in runs[-1].items() if k != 'answered'} }",
              file=sys.stderr)
    web = None
    if not args.no_browser:
        # queries the configuration answers, so every timed search ends with cards shown
        picks = runs[0]["answered"]
        if not picks:
            raise SystemExit(f"{runs[0]['retriever']} answered no query of {args.dataset}")
        searches = [picks[i % len(picks)] for i in range(args.ui_searches + 1)]
        web = in_browser(args.dataset, runs[0]["retriever"], args.loads, searches)
        print(f"browser: {web}", file=sys.stderr)
    write_report(args.out, command, mach, load_before, runs, web)
    print(args.out)


if __name__ == "__main__":
    main()
