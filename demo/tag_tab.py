"""The Space's "Tag" tab: upload videos, pick a taxonomy (the embedded synthetic-tags-v1 one by
default) and a method, and see each video's five best labels with scores and the evidence behind
each. The handler is a plain function of ``(app, inputs)``; models come from the app's workspace."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from bench.errors import BenchError
from bench.paths import repo_root

if TYPE_CHECKING:
    from demo.handlers import App

TAG_METHODS = ("dense-text-use-multilingual", "bm25-text-whisper-base", "fusion-text-multilingual",
               "clip-frames-vit-b32", "xclip-clips-base")
"""Offered in the tab; the first is the default (offline, the best measured zero-shot tagger)."""
TOP_LABELS = 5


def default_taxonomy() -> Path:
    """The embedded tagging set's taxonomy (label names in Russian, English and Japanese)."""
    return repo_root() / "datasets" / "synthetic-tags-v1" / "taxonomy.yaml"


def _path(f: Any) -> Path:
    return Path(f if isinstance(f, str) else getattr(f, "name", f))


def tag_handler(app: App, files: list[Any] | None, taxonomy_file: Any, method: str | None,
                lang: str | None) -> str:
    """Markdown: per uploaded video its best labels (name in ``lang``, score, evidence), or why
    it has none; a one-line error for bad input."""
    from bench.datasets.tagging import load_taxonomy
    from bench.tagging.files import tag_files

    if not files:
        return "Upload one or more videos to tag."
    method = method or TAG_METHODS[0]
    try:
        taxonomy = load_taxonomy(_path(taxonomy_file) if taxonomy_file else default_taxonomy())
        paths = [_path(f) for f in files]
        _, tagged = tag_files(app.workspace, paths, taxonomy, method)
    except BenchError as exc:
        return f"**Could not tag:** {exc}"
    lines = [f"Method `{method}` ({tagged.family}; windows aggregated by {tagged.aggregation})."]
    for path, vt in zip(paths, tagged.videos, strict=True):
        lines.append(f"\n**{path.name}**\n")
        if vt.scores is None:
            lines.append(f"No labels: {vt.reason}")
            continue
        lines.append("| # | label | score | evidence |\n|---|---|---:|---|")
        for i, (lid, score, ev) in enumerate(vt.top(taxonomy, TOP_LABELS), start=1):
            label = next(lb for lb in taxonomy.labels if lb.id == lid)
            ev_cell = (ev or "").replace("|", "/")
            lines.append(f"| {i} | {label.name(lang)} (`{lid}`) | {score:.3f} | {ev_cell} |")
    return "\n".join(lines)


def build_tag_tab(app: App) -> None:
    """The tab and its event, inside the caller's ``gr.Blocks``."""
    with gr.Tab("Tag", id="tag"):
        gr.Markdown("Tag videos into a taxonomy, zero-shot: the five best labels of each video "
                    "with their scores and the evidence behind each. Without a taxonomy file the "
                    "embedded set's eight categories are used (names in Russian, English, Japanese).")
        with gr.Row():
            videos = gr.File(label="Videos to tag", file_count="multiple", elem_id="tag-videos",
                             height=120)
            taxonomy = gr.File(label="Taxonomy YAML (optional)", file_types=[".yaml", ".yml"],
                               elem_id="tag-taxonomy", height=120)
        with gr.Row():
            method = gr.Dropdown(label="Method", choices=list(TAG_METHODS), value=TAG_METHODS[0],
                                 elem_id="tag-method")
            lang = gr.Radio(["ru", "en", "ja"], value="ru", label="Label names in",
                            elem_id="tag-lang")
        go = gr.Button("Tag", variant="primary", elem_id="tag-btn")
        out = gr.Markdown(elem_id="tag-result")

    def tag_fn(files: list[Any] | None, tax: Any, m: str | None, lg: str | None) -> str:
        return tag_handler(app, files, tax, m, lg)

    go.click(tag_fn, [videos, taxonomy, method, lang], out)
