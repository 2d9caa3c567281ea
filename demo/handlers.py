"""The Space's handlers: plain functions of ``(app, inputs)`` that tests call directly, and
:class:`App`, what every request shares. The layout that wires them up is ``demo/app.py``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import gradio as gr

from bench.errors import BadInput, BenchError
from bench.eval.snapshot import snapshot_dir
from bench.evidence import fmt_ts, fmt_window
from bench.paths import cache_home, repo_root
from bench.serving.confidence import bar, calibrations, mark, strength, verdict
from bench.serving.display import best_iou, describe_evidence, score_timeline, timeline_figure
from bench.serving.leaderboard import (
    browser_queries,
    find_query,
    group_label,
    leaderboard_table,
    load_predictions,
    parse_group_label,
    prediction_rows,
    query_label,
)
from bench.serving.media import card_thumbnail, clip_from
from bench.serving.search import (
    DEFAULT_RETRIEVER,
    SearchOutcome,
    demo_dataset,
    embedded_videos,
    one_line,
    search,
)
from bench.serving.sessions import (
    Session,
    UploadLimits,
    accept_upload,
    check_query,
    remove_session,
    sessions_root,
)
from bench.types import Moment, Query, QuerySet, Video
from bench.workspace import Workspace

if TYPE_CHECKING:
    from bench.eval.calibration import Calibration
    from bench.eval.results import ResultFile

log = logging.getLogger("bench")

F = TypeVar("F", bound=Callable[..., Any])

EMPTY_RESULTS = ("No benchmark results here yet: run `python -m bench run` (it writes "
                 "`results/`), or start the app with `--results DIR`.")
NO_CONFIDENT_MATCH = "No confident match"


class App:
    """What requests share: built once at start-up; its caches fill lazily under locks."""

    def __init__(self, results_dir: Path | None, dataset: str | None = None, device: str = "auto",
                 sessions: Path | None = None, workspace: Workspace | None = None,
                 methods: Sequence[str] | None = None, sheets: Path | None = None,
                 default_method: str | None = None) -> None:
        self.results_dir = Path(results_dir) if results_dir is not None else None
        """Where the leaderboard reads results; ``None``: ``results/`` of the checkout when it
        holds any, else the committed snapshot (so a fresh Space shows a leaderboard)."""
        self.local_results = repo_root() / "results"
        self.snapshot = snapshot_dir()
        self.dataset = dataset or demo_dataset()
        self.methods = list(methods) if methods else None
        self.default_method = default_method
        self.sessions = sessions or sessions_root()
        self.workspace = workspace or Workspace(device=device)
        """The store and the retrievers, shared by every session and tab."""
        self.limits = UploadLimits()
        self.sheets = sheets or cache_home() / "demo" / "thumbnails"
        """Thumbnail sheets of the embedded set's videos (made by the warm-up)."""
        self._lock = threading.Lock()
        self._plot_lock = threading.Lock()
        self._sets: dict[str, QuerySet] = {}
        self._thresholds: dict[Path, tuple[tuple[tuple[str, int], ...], dict[str, Calibration]]] = {}

    # -- the embedded set (built on first use: about a minute, then cached on disk) --------

    def dataset_name(self) -> str:
        """The embedded set's name as result files spell it (a directory's name)."""
        return Path(self.dataset).name if Path(self.dataset).is_dir() else self.dataset

    def query_set(self, name: str | None = None) -> QuerySet:
        """A query set by name: the embedded one, or another self-contained set."""
        from bench.datasets import SELF_CONTAINED, resolve_dataset

        name = name or self.dataset_name()
        with self._lock:
            qs = self._sets.get(name)
            if qs is None:
                if name == self.dataset_name():
                    qs = resolve_dataset(self.dataset)
                elif name in SELF_CONTAINED:
                    qs = resolve_dataset(name)
                else:
                    raise BadInput(f"the query set of {name!r} is not available in this app")
                self._sets[name] = qs
            return qs

    def embedded(self) -> dict[str, Video]:
        return embedded_videos(self.query_set())

    def configurations(self) -> list[str]:
        """The configurations offered: every one in models/, or the ``--methods`` subset."""
        from bench.retrievers import load_configs

        names = sorted(load_configs())
        if self.methods is None:
            return names
        unknown = [m for m in self.methods if m not in names]
        if unknown:
            raise BadInput(f"--methods: unknown configuration(s) {', '.join(unknown)}; "
                           f"known: {', '.join(names)}")
        return [n for n in names if n in self.methods]

    def best(self) -> tuple[str, str]:
        """The configuration to use by default and a line saying why."""
        from bench.eval import report

        names = self.configurations()
        if not names:
            raise BadInput("no retriever configurations found in models/")
        if self.default_method:
            if self.default_method not in names:
                raise BadInput(f"--method {self.default_method!r} is not one of the offered "
                               f"configurations: {', '.join(names)}")
            return self.default_method, f"Default method: **{self.default_method}**."
        dataset = self.dataset_name()
        loaded = self._sets.get(dataset)
        source = self.results_source()
        # The committed snapshot fills the leaderboard of a fresh Space; the default method
        # stays a deployer's choice (results of their own, or --method).
        found = None if source == self.snapshot else report.best_configuration(
            source, dataset, loaded.split if loaded is not None else "test")
        if found in names:
            return str(found), f"Best on the {dataset} leaderboard: **{found}** (you can change it)."
        fallback = DEFAULT_RETRIEVER if DEFAULT_RETRIEVER in names else names[0]
        return fallback, f"No {dataset} leaderboard yet; using **{fallback}**."

    def results_source(self) -> Path:
        """The directory the leaderboard, the browser and the thresholds are read from."""
        if self.results_dir is not None:
            return self.results_dir
        local = self.local_results
        return local if local.is_dir() and any(local.rglob("*.json")) else self.snapshot

    def results(self) -> list[ResultFile]:
        from bench.eval import report

        try:
            return report.load_all(self.results_source())
        except BadInput:  # no results directory yet is a normal state
            return []

    def calibration(self, name: str) -> Calibration | None:
        """The configuration's confidence threshold from the results, else from the snapshot
        (None: it has none)."""
        for source in dict.fromkeys([self.results_source(), self.snapshot]):
            found = self._calibrations(source).get(name)
            if found is not None:
                return found
        return None

    def _calibrations(self, source: Path) -> dict[str, Calibration]:
        # Read again only when a result file there changed: a search must not parse them all.
        from bench.eval import report

        files = sorted(source.rglob("*.json")) if source.is_dir() else []
        stamp = tuple((str(f), f.stat().st_mtime_ns) for f in files)
        with self._lock:
            cached = self._thresholds.get(source)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        try:
            found = calibrations(report.load_all(source), self.dataset_name()) if files else {}
        except BadInput:
            found = {}
        with self._lock:
            self._thresholds[source] = (stamp, found)
        return found

    def groups(self) -> dict[tuple[str, str], list[ResultFile]]:
        from bench.eval import report

        return report.group(self.results())

    def plots(self, rows: Sequence[ResultFile]) -> dict[str, str]:
        from bench.eval import report

        with self._plot_lock:  # report.plots draws with pyplot, which is not thread-safe
            return report.plots(rows)

    def session(self, sess: Session | None) -> Session:
        return sess if sess is not None else Session.open(self.sessions)


def guarded(fn: F) -> F:
    """Show an unexpected error as a one-line message in the page, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except BenchError as exc:
            raise gr.Error(one_line(exc), print_exception=False) from None
        except Exception as exc:
            log.exception("demo handler %s failed", fn.__name__)
            raise gr.Error(f"Something went wrong: {type(exc).__name__}: {one_line(exc)}",
                           print_exception=False) from None

    return wrapper  # type: ignore[return-value]


# --- rendering ---------------------------------------------------------------------------

def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def strengths(moments: Sequence[Moment], calibration: Calibration | None,
              query: str | None) -> list[float]:
    """Each moment's strength in [0, 1] for the confidence bar (see :func:`strength`)."""
    best = max((m.score for m in moments), default=0.0)
    return [strength(m, calibration, best, query) for m in moments]


def confidence_text(m: Moment, fraction: float) -> str:
    """A confidence bar and its verdict (``▰▰▰▰▰▰▰▰▰▱ confident``), what a visitor reads
    instead of a raw score."""
    return f"{bar(fraction)} {verdict(m)}"


def card_caption(rank: int, m: Moment, fraction: float = 1.0) -> str:
    return f"#{rank} · {m.vid} · {fmt_window(m.start, m.end)} · {confidence_text(m, fraction)}"


def cards(session: Session, videos: dict[str, Video], moments: Sequence[Moment],
          sheets: Path | None = None, fractions: Sequence[float] | None = None
          ) -> list[tuple[str, str]]:
    """(thumbnail path, caption) per moment; the thumbnail is the moment's middle frame,
    from the video's thumbnail sheet under ``sheets`` when it has one. Frames without a
    sheet are cut in parallel: each is a short ffmpeg run, mostly start-up time."""
    from concurrent.futures import ThreadPoolExecutor

    shown = [(i, m, videos[m.vid]) for i, m in enumerate(moments, start=1) if m.vid in videos]
    if not shown:
        return []
    with ThreadPoolExecutor(max_workers=min(4, len(shown))) as pool:
        thumbs = list(pool.map(lambda item: card_thumbnail(
            item[2], (item[1].start + item[1].end) / 2, session.root / "thumbs", sheets), shown))
    bars = list(fractions) if fractions is not None else strengths(moments, None, None)
    return [(str(t), card_caption(i, m, bars[i - 1]))
            for (i, m, _), t in zip(shown, thumbs, strict=True)]


def results_markdown(outcome: SearchOutcome, calibration: Calibration | None = None,
                     fractions: Sequence[float] | None = None) -> str:
    if outcome.error:
        return f"⚠ **{outcome.retriever}** {outcome.error}"
    if not outcome.moments:
        return f"No moment found by **{outcome.retriever}** for this query."
    lines = [f"**{outcome.retriever}** found {plural(len(outcome.moments), 'moment')} in "
             f"{outcome.latency_s * 1000:.0f} ms. Click a card to play from there.", ""]
    bars = list(fractions) if fractions is not None else strengths(outcome.moments, None, None)
    for i, m in enumerate(outcome.moments, start=1):
        ev = describe_evidence(m.evidence)
        lines.append(f"{i}. `{m.vid}` **{fmt_window(m.start, m.end)}** · "
                     f"{confidence_text(m, bars[i - 1])} · "
                     f"score {m.score:.3f}" + (f" · {ev}" if ev else ""))
    if calibration is not None and calibration.threshold is not None:
        lines += ["", f"The bar is the share of questions without an answer whose best moment "
                      f"this one beats; confident means a strength of at least "
                      f"{calibration.threshold:.2g}, chosen for {outcome.retriever} so that at "
                      f"most {calibration.max_false_alarm:.0%} of such questions get a confident "
                      "answer."]
    else:
        lines += ["", f"{outcome.retriever} has no calibrated threshold: every moment is shown, "
                      "none is known to be a match; the bar is relative to the best one."]
    return "\n".join(lines)


def search_status(name: str, asked: str, outcome: SearchOutcome) -> str:
    """The line above the cards: how many moments, or that none is a confident match."""
    if not outcome.moments:
        return f"No moment found by **{name}** for {asked}; try other words or another method."
    if all(m.confident is False for m in outcome.moments):
        return (f"**{NO_CONFIDENT_MATCH}** from **{name}** for {asked}. The nearest "
                f"{plural(len(outcome.moments), 'moment')} (greyed) may not show it.")
    return (f"**{plural(len(outcome.moments), 'moment')}** from **{name}** in "
            f"{outcome.latency_s * 1000:.0f} ms for {asked}")


def video_choices(app: App, session: Session | None) -> list[tuple[str, str]]:
    out = [(f"{vid} · {fmt_ts(v.duration or 0)}", vid)
           for vid, v in sorted(app.embedded().items())]
    if session is not None:
        out += [(f"{vid} · {fmt_ts(v.duration or 0)} (yours)", vid)
                for vid, v in session.uploads.items()]
    return out


def all_videos(app: App, session: Session | None) -> dict[str, Video]:
    return {**app.embedded(), **(session.uploads if session is not None else {})}


# --- handlers (plain functions of (app, inputs) so tests can call them directly) ----------

def on_load(app: App, request: gr.Request | None) -> tuple[Any, ...]:
    key = getattr(request, "session_hash", None) if request is not None else None
    sess = Session.open(app.sessions, key)
    names = app.configurations()
    groups = [group_label(d, s) for d, s in app.groups()]
    lb_default = next((g for g in groups if g.startswith(f"{app.dataset_name()} · ")),
                      groups[0] if groups else None)
    return (sess, gr.update(choices=names), gr.update(choices=groups, value=lb_default),
            gr.update(choices=groups, value=lb_default))


def on_load_videos(app: App, sess: Session | None) -> tuple[Any, ...]:
    """Second step of loading: may build the embedded set on a fresh machine. A part that
    fails says so in the page and the rest still loads."""
    sess = app.session(sess)
    notes = []
    try:
        choices = video_choices(app, sess)
        queries = [query_label(q) for q in app.query_set().queries if q.vid is not None]
    except BadInput as exc:
        choices, queries = [], []
        notes.append(f"⚠ The embedded set {app.dataset_name()} is not available: {exc}")
    try:
        best, why = app.best()
        method = gr.update(value=best)
        notes.append(why)
    except BadInput as exc:
        method = gr.update()
        notes.append(f"⚠ {exc}")
    vids = [v for _, v in choices]
    return (sess, gr.update(choices=choices, value=vids[:3]), method, "\n\n".join(notes),
            gr.update(choices=queries, value=None),
            gr.update(choices=choices, value=vids[0] if vids else None))


def on_upload(app: App, sess: Session | None, files: Sequence[Any] | None,
              selected: Sequence[str] | None) -> tuple[Any, ...]:
    sess = app.session(sess)
    notes = []
    reserved = list(app.embedded())
    for f in files or []:
        path = Path(getattr(f, "path", None) or getattr(f, "name", None) or str(f))
        original = getattr(f, "orig_name", None) or path.name
        try:
            v = accept_upload(sess, path, original, reserved=reserved, limits=app.limits)
            notes.append(f"✓ **{v.vid}** accepted ({fmt_ts(v.duration or 0)}); "
                         "it is indexed on your first search.")
        except BadInput as exc:
            notes.append(f"✗ {exc}")
        finally:
            drop_gradio_copy(path)
    choices = video_choices(app, sess)
    value = list(dict.fromkeys([*(selected or []), *sess.uploads]))
    # The file box is cleared: accepted files now live in the session folder and the list.
    return (sess, "\n\n".join(notes), gr.update(choices=choices, value=value), None,
            gr.update(choices=choices))


def drop_gradio_copy(path: Path) -> None:
    """Delete gradio's own copy of an upload once handled, so the only copy left is the one
    in the session folder (deleted with the session). Files elsewhere are never touched."""
    from gradio.utils import get_upload_folder

    upload_root = Path(get_upload_folder()).resolve()
    resolved = path.resolve()
    if resolved.is_file() and resolved.is_relative_to(upload_root):
        resolved.unlink(missing_ok=True)


def on_search(app: App, sess: Session | None, selected: Sequence[str] | None,
              text: str | None, image: str | None, name: str | None, top_k: float,
              progress: Callable[..., Any] | None = None) -> tuple[Any, ...]:
    """-> (session, status, cards, moments, player, details). The score plot follows in a
    second step (:func:`on_timeline`) so the cards show without waiting for it."""
    sess = app.session(sess)
    try:
        q = check_query(text, image)
    except BadInput as exc:
        return sess, f"→ {exc}", [], [], None, ""
    if not name:
        return sess, "→ Choose a method.", [], [], None, ""
    videos = all_videos(app, sess)
    picked = [videos[v] for v in selected or [] if v in videos]
    if not picked:
        return sess, "→ Choose at least one video, or upload one.", [], [], None, ""
    if progress is not None:
        progress(0.05, desc=f"{name}: indexing new videos (cached after the first time)")
    outcome = search(app.workspace, name, picked, q, top_k=int(top_k),
                             corpus=list(app.embedded().values()))
    if outcome.error:
        return sess, f"⚠ **{name}** {outcome.error}", [], [], None, ""
    calibration = app.calibration(name)
    outcome.moments = mark(outcome.moments, calibration, q.text)
    bars = strengths(outcome.moments, calibration, q.text)
    if progress is not None:
        progress(0.9, desc="thumbnails")
    shown = cards(sess, videos, outcome.moments, app.sheets, bars)
    asked = f"“{q.text}”" if q.text else "the example image"
    status = search_status(name, asked, outcome)
    return (sess, status, shown, outcome.moments, None,
            results_markdown(outcome, calibration, bars))


def gallery_classes(moments: Sequence[Moment]) -> list[str]:
    """The cards' CSS classes: greyed when no moment is a confident match."""
    return ["unsure"] if moments and all(m.confident is False for m in moments) else []


def on_timeline(app: App, sess: Session | None, moments: Sequence[Moment]) -> Any:
    """The score-over-time plot of the last search, one panel per video (None: no moments)."""
    videos = all_videos(app, sess)
    return score_timeline(moments, {m.vid: videos[m.vid].duration if m.vid in videos
                                            else None for m in moments})


def on_card(app: App, sess: Session | None, moments: Sequence[Moment],
            index: Any) -> str | None:
    """The clip that starts at the clicked card's moment."""
    if not isinstance(index, int) or not 0 <= index < len(moments):
        return None
    sess = app.session(sess)
    m = moments[index]
    v = all_videos(app, sess).get(m.vid)
    if v is None:
        raise BadInput(f"{m.vid}: this video is no longer available")
    return str(clip_from(v, m.start, m.end, sess.root / "clips"))


def on_bench_query(app: App, label: str | None) -> tuple[Any, Any]:
    if not label:
        return gr.update(), gr.update()
    q = find_query(app.query_set(), label)
    return q.query, q.vid


def on_compare(app: App, sess: Session | None, label: str | None, text: str | None,
               vid: str | None, progress: Callable[..., Any] | None = None) -> tuple[Any, ...]:
    """-> (plot, table, status): every configuration on one query and video."""
    empty = {"headers": COMPARE_HEADERS, "data": []}
    try:
        q = check_query(text, None)
    except BadInput as exc:
        return None, empty, f"→ {exc}"
    videos = all_videos(app, sess)
    if not vid or vid not in videos:
        return None, empty, "→ Choose a video."
    truth: list[tuple[float, float]] = []
    if label:
        bq = find_query(app.query_set(), label)
        if bq.vid == vid and " ".join(bq.query.split()) == q.text:
            truth = list(bq.relevant_windows)
    names = app.configurations()
    corpus = list(app.embedded().values())
    rows: list[tuple[str, list[Moment]]] = []
    table = []
    for i, name in enumerate(names):
        if progress is not None:
            progress(i / max(1, len(names)), desc=f"{name} ({i + 1}/{len(names)})")
        outcome = search(app.workspace, name, [videos[vid]], q, top_k=5, corpus=corpus)
        top = outcome.moments[0] if outcome.moments else None
        if not outcome.error:
            rows.append((name, outcome.moments))
        table.append([
            name,
            fmt_window(top.start, top.end) if top else "–",
            f"{top.score:.3f}" if top else "–",
            f"{best_iou((top.start, top.end), truth):.2f}" if top and truth else "–",
            "–" if outcome.unavailable else f"{outcome.latency_s * 1000:.0f}",
            outcome.error or ("" if top else "no moment found"),
        ])
    fig = timeline_figure(rows, videos[vid].duration or 60.0, truth,
                                  title=f"{vid}: “{(q.text or '')[:60]}”")
    ok = sum(1 for r in table if not r[5])
    status = (f"{ok} of {len(names)} methods answered" +
              (" · ground truth in green, IoU against it" if truth else
               " · pick a benchmark query to see its ground truth"))
    return fig, {"headers": COMPARE_HEADERS, "data": table}, status


COMPARE_HEADERS = ["method", "top window", "score", "IoU", "latency ms", "note"]


def on_leaderboard(app: App, label: str | None, tag: str | None, lang: str | None
                   ) -> tuple[Any, ...]:
    """-> (table, note, plots, tag choices, lang choices)."""
    groups = app.groups()
    if not groups or not label:
        return {"headers": ["retriever"], "data": []}, EMPTY_RESULTS, [], gr.update(), gr.update()
    dataset, split = parse_group_label(label)
    rows = groups.get((dataset, split), [])
    tags = sorted({t for r in rows for t in r.metrics_by_tag})
    langs = sorted({t for r in rows for t in r.metrics_by_lang})
    tag = tag if tag in tags else "all"
    lang = lang if lang in langs else "all"
    note = ("Rows marked *floor* are chance (a seeded random window; the most common window "
            "position and length): what guessing scores, shown so every number has its "
            "reference, never ranked. Other unranked rows are unavailable on this machine, "
            "failed, or ran random-init test models whose numbers only exercise the code.")
    if tag != "all" and lang != "all":
        note = "Results break down by tag or by language, not both: showing the language. " + note
        tag = "all"
    headers, data = leaderboard_table(rows, tag, lang)
    images = [(_image(data_b64), title) for title, data_b64 in app.plots(rows).items()]
    return ({"headers": headers, "data": data}, note, images,
            gr.update(choices=["all", *tags], value=tag),
            gr.update(choices=["all", *langs], value=lang))


def _image(data: str) -> Any:
    import base64
    import io

    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def on_browser_dataset(app: App, label: str | None, sort: str) -> tuple[Any, str]:
    if not label:
        return gr.update(choices=[], value=None), EMPTY_RESULTS
    dataset, split = parse_group_label(label)
    try:
        qs = app.query_set(dataset)
    except BadInput as exc:
        return gr.update(choices=[], value=None), f"→ {exc}"
    preds = load_predictions(app.results_source(), app.results(), dataset, split)
    if not preds:
        return gr.update(choices=[], value=None), f"No predictions saved for {label}."
    items = browser_queries(qs, preds, sort)
    choices = [(f"{lbl} · spread {d:.2f}" if sort == "disagreement" else lbl, lbl)
               for lbl, d in items]
    return (gr.update(choices=choices, value=items[0][0] if items else None),
            f"{plural(len(items), 'query', 'queries')}, {plural(len(preds), 'method')} with "
            "predictions.")


def on_browser_query(app: App, label: str | None, item: str | None) -> tuple[Any, ...]:
    """-> (truth markdown, video, plot, table)."""
    if not label or not item:
        return "", None, None, {"headers": BROWSER_HEADERS, "data": []}
    dataset, split = parse_group_label(label)
    qs = app.query_set(dataset)
    q = find_query(qs, item)
    video = embedded_videos(qs).get(q.vid or "")
    preds = load_predictions(app.results_source(), app.results(), dataset, split)
    rows = prediction_rows(q, preds)
    table = []
    for name, moments in rows:
        top = moments[0] if moments else None
        table.append([name, fmt_window(top.start, top.end) if top else "–",
                      f"{top.score:.3f}" if top else "–",
                      f"{best_iou((top.start, top.end), q.relevant_windows):.2f}"
                      if top else "–"])
    table.sort(key=lambda r: (r[3] == "–", -float(r[3]) if r[3] != "–" else 0.0, r[0]))
    duration = (video.duration if video else None) or q.duration or max(
        [e for _, e in q.relevant_windows] + [m.end for _, ms in rows for m in ms] + [1.0])
    fig = timeline_figure(rows, duration, q.relevant_windows,
                                  title=" ".join(q.query.split())[:80])
    return (truth_markdown(q), video.path if video else None, fig,
            {"headers": BROWSER_HEADERS, "data": table})


BROWSER_HEADERS = ["method", "top window", "score", "IoU"]


def truth_markdown(q: Query) -> str:
    windows = ", ".join(fmt_window(s, e) for s, e in q.relevant_windows) or "none"
    meta = " · ".join(x for x in (q.lang or "", ", ".join(q.tags)) if x)
    return f"**{q.query}** in `{q.vid}` — truth: **{windows}**" + (f" · {meta}" if meta else "")


def on_unload(app: App, request: gr.Request | None) -> None:
    key = getattr(request, "session_hash", None) if request is not None else None
    if key and remove_session(app.sessions, key):
        log.info("removed the folder of a closed session")


def cleanup_session(sess: Session | None) -> None:
    """gr.State's delete callback: the backstop when unload did not run (state expiry)."""
    if isinstance(sess, Session):
        sess.cleanup()
