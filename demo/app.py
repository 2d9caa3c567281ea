"""SceneBench Space: search videos by natural language, compare every method, browse results.

Start with ``python demo/app.py`` (``--port``, ``--results``, ``--dataset``); on a Hugging
Face Space this file is the entry (README front matter ``app_file``). Importing it builds
nothing and loads no model: the embedded set and the retrievers load on first use. This
file lays out the page and wires it to the handlers in ``demo/handlers.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import gradio as gr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # a Space runs this file directly from the checkout
    sys.path.insert(0, str(ROOT))

from bench.paths import cache_home  # noqa: E402
from bench.serving.media import build_sheet  # noqa: E402
from bench.serving.search import DATASET_ENV, DEFAULT_DATASET, one_line, search  # noqa: E402
from bench.serving.sessions import Session  # noqa: E402
from bench.types import Moment, Query  # noqa: E402
from demo.handlers import (  # noqa: E402
    BROWSER_HEADERS,
    COMPARE_HEADERS,
    App,
    cleanup_session,
    gallery_classes,
    guarded,
    on_bench_query,
    on_browser_dataset,
    on_browser_query,
    on_card,
    on_compare,
    on_leaderboard,
    on_load,
    on_load_videos,
    on_search,
    on_timeline,
    on_unload,
    on_upload,
)
from demo.impression_tab import impression_tab  # noqa: E402
from demo.tag_tab import build_tag_tab  # noqa: E402

log = logging.getLogger("bench")

RESULTS_ENV = "SCENEBENCH_RESULTS"
METHODS_ENV = "SCENEBENCH_DEMO_METHODS"
METHOD_ENV = "SCENEBENCH_DEMO_METHOD"
INTRO = """# SceneBench
Find the moment in a video by describing it — in any language — or with an example image.
Each video is indexed once and cached; searching indexed videos takes well under a second.
"""


# Cards: the caption (rank, video, mm:ss-mm:ss, score) sits under the thumbnail, in full.
CSS = """
#cards .thumbnail-item { aspect-ratio: auto; height: auto; display: flex; flex-direction: column; }
#cards .thumbnail-item > img { height: 140px; object-fit: cover; }
#cards .caption-label { position: static; max-width: none; white-space: normal; opacity: 1;
  border: none; border-radius: 0; font-size: 13px; padding: 4px 6px; }
#cards .fixed-height, #lb-plots .fixed-height { min-height: 0; max-height: none; overflow-y: visible; }
#lb-plots .thumbnail-item { aspect-ratio: auto; height: auto; display: flex; flex-direction: column; }
#lb-plots .caption-label { position: static; max-width: none; white-space: normal; opacity: 1;
  border: none; border-radius: 0; font-size: 13px; padding: 4px 6px; }
#cards.unsure .thumbnail-item { filter: grayscale(1); opacity: 0.55; }
@media (max-width: 640px) {
  #cards .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
  #cards .thumbnail-item > img { height: 110px; }
  #lb-plots .grid-container { grid-template-columns: minmax(0, 1fr) !important; }
  .gradio-container { padding-left: 6px !important; padding-right: 6px !important; }
}
"""


def build(app: App) -> gr.Blocks:
    """The Blocks UI over ``app``; building it loads no model and builds no dataset."""
    with gr.Blocks(title="SceneBench", delete_cache=(1800, 3600)) as demo:
        session = gr.State(None, delete_callback=cleanup_session)
        last_moments = gr.State([])
        gr.Markdown(INTRO)

        with gr.Tab("Search", id="search"):
            with gr.Row():
                with gr.Column(scale=2):
                    chosen = gr.CheckboxGroup(label=f"Videos of the embedded set ({app.dataset_name()})",
                                              choices=[], elem_id="videos")
                    upload = gr.File(label="…or upload your own videos", file_count="multiple",
                                     elem_id="upload", height=120)
                    gr.Markdown(f"Upload {app.limits.describe()}. Uploads stay in a private "
                                "folder for this browser session and are deleted when you leave.",
                                elem_id="upload-note")
                    upload_status = gr.Markdown(elem_id="upload-status")
                with gr.Column(scale=3):
                    query = gr.Textbox(label="What are you looking for?", lines=1, max_lines=3,
                                       placeholder="the slide where the budget is discussed · "
                                                   "ホワイトボードに数式を書いている場面",
                                       elem_id="query")
                    image = gr.Image(label="…or an example image (clip-frames methods)",
                                     type="filepath", height=140, elem_id="query-image")
                    with gr.Row():
                        retriever = gr.Dropdown(label="Method", choices=[], elem_id="retriever")
                        top_k = gr.Slider(1, 10, value=5, step=1, label="Moments to show")
                    best_note = gr.Markdown(elem_id="best-note")
                    go = gr.Button("Search", variant="primary", elem_id="search-btn")
            status = gr.Markdown(elem_id="search-status")
            gallery = gr.Gallery(label="Moments (click one to play from there)", columns=5,
                                 height="auto", elem_id="cards", allow_preview=False,
                                 object_fit="cover", fit_columns=False, buttons=[])
            with gr.Row():
                player = gr.Video(label="Playing from the selected moment", elem_id="player",
                                  autoplay=True, interactive=False, height=300)
                timeline = gr.Plot(label="Score over time, per video", elem_id="timeline",
                                   show_label=False)
            details = gr.Markdown(elem_id="details")

        with gr.Tab("Compare", id="compare"):
            gr.Markdown("The same query through every method, side by side. Pick a benchmark "
                        "query to see its ground truth and each method's IoU.")
            with gr.Row():
                bench_query = gr.Dropdown(label="Benchmark query (optional)", choices=[],
                                          elem_id="bench-query")
                cmp_query = gr.Textbox(label="Query", elem_id="cmp-query")
                cmp_video = gr.Dropdown(label="Video", choices=[], elem_id="cmp-video")
            cmp_go = gr.Button("Compare all methods", variant="primary", elem_id="compare-btn")
            cmp_status = gr.Markdown(elem_id="cmp-status")
            cmp_plot = gr.Plot(label="Top-5 windows of each method on a shared timeline",
                               elem_id="cmp-plot", show_label=False)
            cmp_table = gr.Dataframe(headers=COMPARE_HEADERS, interactive=False,
                                     elem_id="cmp-table", wrap=True,
                                     column_widths=["16%", "11%", "8%", "6%", "9%", "50%"])

        with gr.Tab("Leaderboard", id="leaderboard") as lb_tab:
            with gr.Row():
                lb_dataset = gr.Dropdown(label="Dataset · split", choices=[], elem_id="lb-dataset")
                lb_tag = gr.Dropdown(label="Tag", choices=["all"], value="all", elem_id="lb-tag")
                lb_lang = gr.Dropdown(label="Language", choices=["all"], value="all",
                                      elem_id="lb-lang")
            lb_table = gr.Dataframe(interactive=False, elem_id="lb-table", wrap=True)
            lb_note = gr.Markdown(elem_id="lb-note")  # filled when the tab opens
            lb_gallery = gr.Gallery(label="Plots (click to enlarge)", columns=2, height="auto",
                                    elem_id="lb-plots", object_fit="contain", buttons=[])

        with gr.Tab("Benchmark browser", id="browser"):
            with gr.Row():
                br_dataset = gr.Dropdown(label="Results of dataset · split", choices=[],
                                         elem_id="br-dataset")
                br_sort = gr.Radio(["disagreement", "query id"], value="disagreement",
                                   label="Sort queries by", elem_id="br-sort")
            br_query = gr.Dropdown(label="Query", choices=[], elem_id="br-query")
            br_note = gr.Markdown(elem_id="br-note")
            br_truth = gr.Markdown(elem_id="br-truth")
            with gr.Row():
                br_video = gr.Video(label="Video", elem_id="br-video", interactive=False)
                br_plot = gr.Plot(label="Truth (green) and every method's predictions",
                                  elem_id="br-plot", show_label=False)
            br_table = gr.Dataframe(headers=BROWSER_HEADERS, interactive=False,
                                    elem_id="br-table")

        build_tag_tab(app)  # its own module and handler (demo/tag_tab.py)
        impression_tab(app, session)

        # Thin closures: gradio injects Request/SelectData/Progress by signature.
        def load(request: gr.Request) -> tuple[Any, ...]:
            return on_load(app, request)

        def load_videos(sess: Session | None) -> tuple[Any, ...]:
            return on_load_videos(app, sess)

        def upload_fn(sess: Session | None, files: list[Any] | None,
                      selected: list[str] | None) -> tuple[Any, ...]:
            return on_upload(app, sess, files, selected)

        def search_fn(sess: Session | None, selected: list[str] | None, text: str | None,
                      img: str | None, name: str | None, k: float,
                      progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (gradio injects it)
                      ) -> tuple[Any, ...]:
            out = on_search(app, sess, selected, text, img, name, k, progress)
            # No confident match: the nearest moments stay, greyed.
            return (*out[:2], gr.update(value=out[2], elem_classes=gallery_classes(out[3])),
                    *out[3:])

        def timeline_fn(sess: Session | None, moments: list[Moment]) -> Any:
            return on_timeline(app, sess, moments)

        def card_fn(sess: Session | None, moments: list[Moment],
                    evt: gr.SelectData) -> str | None:
            return on_card(app, sess, moments, evt.index)

        def bench_query_fn(label: str | None) -> tuple[Any, Any]:
            return on_bench_query(app, label)

        def compare_fn(sess: Session | None, label: str | None, text: str | None,
                       vid: str | None,
                       progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (gradio injects it)
                       ) -> tuple[Any, ...]:
            return on_compare(app, sess, label, text, vid, progress)

        def leaderboard_fn(label: str | None, tag: str | None, lang: str | None
                           ) -> tuple[Any, ...]:
            return on_leaderboard(app, label, tag, lang)

        def browser_dataset_fn(label: str | None, sort: str) -> tuple[Any, str]:
            return on_browser_dataset(app, label, sort)

        def browser_query_fn(label: str | None, item: str | None) -> tuple[Any, ...]:
            return on_browser_query(app, label, item)

        def unload(request: gr.Request) -> None:
            on_unload(app, request)

        demo.load(guarded(load), outputs=[session, retriever, lb_dataset, br_dataset],
                  show_progress="hidden").then(
            guarded(load_videos), inputs=[session],
            outputs=[session, chosen, retriever, best_note, bench_query, cmp_video])
        upload.upload(guarded(upload_fn), inputs=[session, upload, chosen],
                      outputs=[session, upload_status, chosen, upload, cmp_video])
        search_out = [session, status, gallery, last_moments, player, details]
        for trigger in (go.click, query.submit):
            trigger(guarded(search_fn), inputs=[session, chosen, query, image, retriever, top_k],
                    outputs=search_out).then(
                guarded(timeline_fn), inputs=[session, last_moments], outputs=[timeline],
                show_progress="hidden")
        gallery.select(guarded(card_fn), inputs=[session, last_moments], outputs=[player])
        bench_query.change(guarded(bench_query_fn), inputs=[bench_query],
                           outputs=[cmp_query, cmp_video])
        cmp_go.click(guarded(compare_fn), inputs=[session, bench_query, cmp_query, cmp_video],
                     outputs=[cmp_plot, cmp_table, cmp_status], concurrency_limit=1)
        # Drawn when its tab opens, not at load (its plots would delay the search button);
        # the handler updates the tag and language choices, so only user input re-runs it
        # (a .change would also fire on load's value and loop on those two).
        lb_tab.select(guarded(leaderboard_fn), inputs=[lb_dataset, lb_tag, lb_lang],
                      outputs=[lb_table, lb_note, lb_gallery, lb_tag, lb_lang])
        for lb_filter in (lb_dataset, lb_tag, lb_lang):
            lb_filter.input(guarded(leaderboard_fn), inputs=[lb_dataset, lb_tag, lb_lang],
                       outputs=[lb_table, lb_note, lb_gallery, lb_tag, lb_lang])
        for br_input in (br_dataset, br_sort):
            br_input.change(guarded(browser_dataset_fn), inputs=[br_dataset, br_sort],
                        outputs=[br_query, br_note])
        br_query.change(guarded(browser_query_fn), inputs=[br_dataset, br_query],
                        outputs=[br_truth, br_video, br_plot, br_table])
        demo.unload(unload)
    return demo


def warm_up(app: App) -> None:
    """Build the embedded set, index it with the default method, ask one query per language
    of the set (the first query in a language loads its tokenizer: seconds for the Japanese
    and Chinese dictionaries) and make the videos' thumbnail sheets, so the first visitor
    waits for none of it. Runs in a background thread; a failure is logged, and the first
    search will report it."""
    from bench.types import QueryInput

    try:
        name, _ = app.best()
        corpus = app.embedded()
        app.workspace.index(name, list(corpus.values()))
        per_lang: dict[str | None, Query] = {}
        for q in app.query_set().queries:
            if q.vid in corpus and q.query.strip():
                per_lang.setdefault(q.lang, q)
        for q in per_lang.values():
            search(app.workspace, name, [corpus[q.vid or ""]], QueryInput(text=q.query),
                           top_k=1, corpus=list(corpus.values()))
        for video in corpus.values():
            build_sheet(video, app.sheets)
        log.info("warm-up done: %s indexed %s", name, app.dataset_name())
    except Exception as exc:
        log.warning("warm-up failed: %s: %s", type(exc).__name__, one_line(exc))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--results", type=Path,
                        default=Path(os.environ[RESULTS_ENV]) if os.environ.get(RESULTS_ENV) else None,
                        help="results directory for the leaderboard (default: results/ when it "
                             "holds results, else the committed snapshot/)")
    parser.add_argument("--dataset", default=None,
                        help=f"embedded set (default: ${DATASET_ENV} or "
                             f"{DEFAULT_DATASET})")
    parser.add_argument("--methods", default=os.environ.get(METHODS_ENV, ""),
                        help="comma-separated configurations to offer (default: all in models/)")
    parser.add_argument("--method", default=os.environ.get(METHOD_ENV) or None,
                        help="default configuration (default: the best on the embedded set's "
                             "leaderboard, else bm25-text)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-warm-up", action="store_true",
                        help="do not index the embedded set in the background at start")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or None
    app = App(args.results, args.dataset, args.device, methods=methods,
              default_method=args.method)
    demo = build(app)
    # Two workers on a small CPU box; extra visitors wait in a bounded queue.
    demo.queue(default_concurrency_limit=2, max_size=32)
    if not args.no_warm_up:
        threading.Thread(target=warm_up, args=(app,), name="warm-up", daemon=True).start()
    demo.launch(server_name=args.host, server_port=args.port, show_error=False,
                allowed_paths=[str(cache_home() / "datasets"), str(app.sessions), str(app.sheets)],
                max_file_size=app.limits.max_bytes, footer_links=["api", "settings"], css=CSS)


if __name__ == "__main__":
    main()
