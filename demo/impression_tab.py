"""The Space's Impressions tab: a video's valence and arousal over time (music and picture,
or the picture alone), and mood queries ("the cheerful part", 「切ない場面」) answered by the
``impression`` family. Its handlers are plain functions of ``(app, inputs)``."""

from __future__ import annotations

from typing import Any

import gradio as gr

from bench.evidence import cut, fmt_window
from bench.serving.sessions import Session
from bench.types import QueryInput
from demo.handlers import App, all_videos, guarded

IMPRESSION_CONFIG = "impression-prior"
IMPRESSION_HEADERS = ["#", "when", "score", "why"]
EXAMPLES = "the cheerful part · the sad, quiet part · 切ない場面 · a parte tensa · милая часть"


def on_impression_videos(app: App, sess: Session | None) -> Any:
    """The video choices (embedded set and this session's uploads)."""
    vids = sorted(all_videos(app, sess))
    return gr.update(choices=vids, value=vids[0] if vids else None)


def impression_figure(times_s: Any, valence: Any, arousal: Any, title: str) -> Any:
    """Valence and arousal (-2..+2) over time as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.plot(times_s, valence, label="valence (sad → happy)", color="#d08a00")
    ax.plot(times_s, arousal, label="arousal (calm → intense)", color="#2a6fdb")
    ax.axhline(0, color="#999", lw=0.6)
    ax.set_ylim(-2.1, 2.1)
    ax.set_xlabel("seconds")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def on_impression(app: App, sess: Session | None, vid: str | None, query: str) -> tuple[Any, Any, str]:
    """(timeline figure, moments table, status line) for ``vid`` and an optional mood query."""
    videos = all_videos(app, sess)
    if not vid or vid not in videos:
        return None, {"headers": IMPRESSION_HEADERS, "data": []}, "Pick a video first."
    r = app.workspace.index(IMPRESSION_CONFIG, [videos[vid]])
    times, est, basis = r.timeline(vid)  # type: ignore[attr-defined]
    axes = r.axes  # type: ignore[attr-defined]
    fig = impression_figure(times, est[:, axes.index("valence")], est[:, axes.index("arousal")],
                            f"{vid}: {basis}")
    rows: list[list[Any]] = []
    status = f"Impression of {vid} from {basis}."
    if query.strip():
        (result,), _ = app.workspace.search(IMPRESSION_CONFIG, [videos[vid]], [QueryInput(query.strip())],
                                            top_k=5, vids=[vid])
        rows = [[i + 1, fmt_window(m.start, m.end), round(m.score, 3), cut(m.evidence.describe(), 160)]
                for i, m in enumerate(result.moments)]
        status = result.reason or f"{len(rows)} moment(s) for {query.strip()!r}; {status}"
    return fig, {"headers": IMPRESSION_HEADERS, "data": rows}, status


def impression_tab(app: App, session: Any) -> None:
    """Lay out the tab and wire its events (call inside the Blocks of ``demo/app.py``)."""
    with gr.Tab("Impressions", id="impressions") as tab:
        gr.Markdown("How each moment feels, from its music and picture: valence (sad → happy) and "
                    "arousal (calm → intense) over time. Ask for a mood in any language, e.g. "
                    f"{EXAMPLES}.")
        with gr.Row():
            video = gr.Dropdown(label="Video", choices=[], elem_id="imp-video")
            query = gr.Textbox(label="Mood (optional)", elem_id="imp-query",
                               placeholder="the cheerful part")
        go = gr.Button("Show impressions", variant="primary", elem_id="imp-btn")
        status = gr.Markdown(elem_id="imp-status")
        plot = gr.Plot(label="Valence and arousal over time", elem_id="imp-plot", show_label=False)
        table = gr.Dataframe(headers=IMPRESSION_HEADERS, interactive=False, elem_id="imp-table", wrap=True)

    def videos(sess: Session | None) -> Any:
        return on_impression_videos(app, sess)

    def show(sess: Session | None, vid: str | None, text: str) -> tuple[Any, Any, str]:
        return on_impression(app, sess, vid, text or "")

    tab.select(guarded(videos), [session], [video])
    go.click(guarded(show), [session, video, query], [plot, table, status])
    query.submit(guarded(show), [session, video, query], [plot, table, status])
