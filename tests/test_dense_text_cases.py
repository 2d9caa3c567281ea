"""dense-text indexing through the store from a subtitle sidecar (found by mutation testing:
``DenseText.index`` was reached only by the slow synthetic-mini test)."""

from __future__ import annotations

from pathlib import Path

from bench.store import FeatureStore
from bench.types import Video
from tests.test_dense_text import make, q


def test_index_reads_subtitles_and_caches_vectors_by_content(tmp_path: Path) -> None:
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:04,000\nthe oven is hot\n\n"
                   "2\n00:00:20,000 --> 00:00:23,000\nknead the dough slowly\n", encoding="utf-8")
    clip = tmp_path / "talk.mp4"
    clip.write_bytes(b"not decoded: only its bytes name the video")
    video = Video(vid="talk", path=str(clip), duration=30.0, subtitles=str(srt))
    store = FeatureStore(tmp_path / "store")
    r = make({"text": {"use": ["subtitle"]}, "extent": {"use": ["curve"]}})
    r.index([video], store)
    (top,) = r.search([q("working the bread dough")], top_k=1)[0]
    assert top.vid == "talk" and top.start < 23.0 and top.end > 20.0
    (listed,) = store.videos()
    assert listed["video_id"] == store.video_id(clip) and listed["done"] >= 1
