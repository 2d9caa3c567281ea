"""``xclip-clips``: X-CLIP video embeddings of sliding clips of sampled frames, matched to a
text query, then the best candidates re-scored with X-CLIP's video-conditioned text prompt.

X-CLIP's image tower exchanges messages between the frames of a clip, so frames are encoded
clip by clip: with the default stride (half a clip) each sampled frame is encoded twice.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from bench.devices import device_key
from bench.engine.extent import ExtentConfig, VideoExtents
from bench.engine.proposals import ProposalConfig
from bench.engine.search import Candidate, Curve, EngineSearch
from bench.errors import BadInput, Unavailable
from bench.evidence import ClipEvidence, ClipMatch
from bench.index.corpus import EmbeddingCorpus, VideoVectors
from bench.modelref import ModelRef, ResolvedModel
from bench.retrievers.base import RetrieverConfig, parse_params
from bench.spans import Window
from bench.timing import stage
from bench.types import Moment, QueryInput, Video
from bench.video.stream import EncoderWorkers, VideoEnd, count_decoder, only_outcome, preprocessed_stream
from bench.vision.encoding import QueryTokenizer, pooled, unit_rows
from bench.vision.loading import (
    dtype_name,
    image_processor_config,
    load_pretrained,
    model_key,
    resolve_or_unavailable,
    torch_dtype,
    weights_tag,
)
from bench.vision.params import VisualParams
from bench.vision.transforms import ImageTransform, load_image

if TYPE_CHECKING:
    import torch

    from bench.store import FeatureStore
    from bench.store.indexing import Outcome
    from bench.video import ProbeInfo

log = logging.getLogger("bench")

# No pinned revision could be looked up offline for this model; "main" until one is pinned.
DEFAULT_MODEL = ModelRef(id="microsoft/xclip-base-patch32", revision="main")
FEATURES_VERSION = "1"


def _clip_proposals() -> ProposalConfig:
    # The frame curve is already a max over 8-frame clips, so no smoothing; a moment is at
    # least 2 s long.
    return ProposalConfig(strategy="peak", rel_threshold=0.5, min_len_s=2.0, nms_iou=0.5)


class Params(VisualParams):
    """``params`` of an ``xclip-clips`` configuration (``fps``: a clip of 8 frames spans 8 s
    at 1 fps). The clip length (frames) is the model's ``vision_config.num_frames`` (8 for
    the released checkpoints)."""

    stride_frames: int = Field(default=4, ge=1)
    """Frames between the starts of consecutive clips."""
    rerank_top: int = Field(default=20, ge=0)
    """Candidate moments re-scored with the video-conditioned text (0 turns it off); at
    least ``top_k`` are always re-scored so returned scores are on one scale."""
    proposals: ProposalConfig = Field(default_factory=_clip_proposals)
    extent: ExtentConfig = Field(default_factory=ExtentConfig)
    """How hits snap to shots, scenes and speech turns (see :class:`~bench.engine.extent.ExtentConfig`)."""
    corpus_clips: int = Field(default=128, ge=1)
    """Corpus search: clips fetched from the vector index to pick candidate videos."""


@dataclass
class _ClipSpans:
    """Where one video's clips lie: frame times and each clip's first/last frame."""

    frame_times_s: np.ndarray
    """float64 ``(n_frames,)``."""
    clip_frames: np.ndarray
    """int64 ``(n_clips, 2)``: first and last frame index (inclusive) of each clip."""


class _Windows:
    """One video's sliding clips while its frames stream in: the frames later clips still
    need, the clips handed out so far (in order) and their results as they come back."""

    def __init__(self, clip_len: int, stride: int) -> None:
        self.clip_len, self.stride = clip_len, stride
        self.buf: torch.Tensor | None = None
        """Preprocessed frames ``[buf_start, seen)``, float ``(n, 3, H, W)``."""
        self.buf_start = 0
        self.next_start = 0
        """First frame of the next regular clip."""
        self.seen = 0
        self.times: list[np.ndarray] = []
        self.starts: list[int] = []
        self.embs: list[np.ndarray] = []
        self.prompts: list[np.ndarray] = []
        self.end: int | None = None
        """Frames the decoder gave this video, once it is done with it."""
        self.decoders: set[str] = set()
        self.closed = False
        """The tail clip (if any) is handed out: no more clips will come."""

    def add(self, pixels: torch.Tensor, times_s: np.ndarray) -> None:
        """The video's next frames."""
        import torch

        self.buf = pixels if self.buf is None else torch.cat([self.buf, pixels])
        self.times.append(times_s)
        self.seen += len(times_s)

    def ready_clips(self) -> list[torch.Tensor]:
        """Frames ``(clip_len, 3, H, W)`` of each clip that can be cut now: one every ``stride``
        frames while a clip fits, then, once all frames are in, one clip ending at the last
        frame (a video shorter than a clip gets one clip with its last frame repeated)."""
        t_len = self.clip_len
        starts = list(range(self.next_start, self.seen - t_len + 1, self.stride))
        if starts:
            self.next_start = starts[-1] + self.stride
        if self.end is not None and self.seen == self.end and not self.closed:
            self.closed = True
            given = self.starts + starts
            if self.seen and (not given or given[-1] + t_len < self.seen):
                starts.append(max(0, self.seen - t_len))
        clips = []
        if starts:
            assert self.buf is not None
            clips = [self.buf[[min(s + j, self.seen - 1) - self.buf_start for j in range(t_len)]]
                     for s in starts]
        self.starts.extend(starts)
        # Drop frames no later clip needs (the last clip_len frames may serve the tail).
        keep_from = min(self.next_start, max(0, self.seen - t_len))
        if self.closed:
            self.buf = None
        elif self.buf is not None and keep_from > self.buf_start:
            self.buf = self.buf[keep_from - self.buf_start:]
            self.buf_start = keep_from
        return clips

    def done(self, emb: np.ndarray, prompt: np.ndarray) -> None:
        """The next clip's embedding and prompt features."""
        self.embs.append(emb)
        self.prompts.append(prompt)

    @property
    def complete(self) -> bool:
        return self.closed and len(self.embs) == len(self.starts)

    def arrays(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The stored arrays (see :meth:`XClipClips.encode_videos`) and the prompt features."""
        starts = np.asarray(self.starts, dtype=np.int64)
        clip_frames = np.stack([starts, np.minimum(starts + self.clip_len - 1, self.seen - 1)], axis=1)
        return ({"emb": np.stack(self.embs), "frame_times_s": np.concatenate(self.times),
                 "clip_frames": clip_frames}, np.stack(self.prompts))


@dataclass
class _Query:
    vector: np.ndarray
    """float32 ``(D,)`` unit query vector."""
    raw: np.ndarray | None
    """Projected text features before normalization (re-scoring); ``None`` without text."""
    image: bool


class XClipClips(EngineSearch):
    """The ``xclip-clips`` family (default ``microsoft/xclip-base-patch32``).

    Retrieval scores every clip by cosine(text, clip video embedding); the per-frame curve
    (max over the clips covering a frame) goes through proposals; then each candidate
    moment is re-scored with X-CLIP's prompt generator, which conditions the text embedding
    on the clip's visual tokens (the score X-CLIP was trained with). An image query is
    embedded as a still clip (the image repeated) and is not re-scored.
    """

    family = "xclip-clips"

    def __init__(self, config: RetrieverConfig, device: str = "cpu") -> None:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise Unavailable(f"{config.name}: xclip-clips needs torch and transformers ({exc})") from None
        self._torch = torch
        self.name = config.name
        self.config = config
        self.device = device
        self.params: Params = parse_params(Params, config)
        if self.params.preprocess == "device":
            # Clips overlap, so frames are preprocessed once, in the prefetch thread.
            raise BadInput(f"retriever {config.name!r}: xclip-clips preprocesses frames in the prefetch "
                           "thread; params.preprocess 'device' is for clip-frames")
        if "{}" not in self.params.prompt:
            raise BadInput(f"retriever {config.name!r}: params.prompt must contain '{{}}' for the query")
        self.model_ref = config.model or DEFAULT_MODEL
        self.resolved: ResolvedModel = resolve_or_unavailable(self.model_ref)
        self.dtype = torch_dtype(self.params.dtype, device)
        model = load_pretrained(AutoModel.from_pretrained, self.model_ref, self.resolved, dtype=self.dtype)
        if not hasattr(model, "prompts_generator") or not hasattr(model, "mit"):
            raise BadInput(f"{self.model_ref.id} ({type(model).__name__}) is not an X-CLIP model")
        self.model = model.to(device).eval()
        self.transform = ImageTransform.from_config(image_processor_config(self.model_ref, self.resolved))
        self.clip_len = int(self.model.config.vision_config.num_frames)
        self.dim = int(self.model.config.projection_dim)
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model_ref, self.resolved)
        max_len = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
        self.tokenize = QueryTokenizer(tokenizer, max_len)
        self.corpus = EmbeddingCorpus(self.dim, index_kind=self.params.index_kind, device=device)
        self.spans: dict[str, _ClipSpans] = {}
        self.encoder_calls = 0
        """Encoder forward passes so far (tests use it to prove the cache is used)."""
        self._calls_lock = threading.Lock()  # encoder workers count their calls too
        self.decoders_used: dict[str, int] = {}
        """Indexed videos per decoder that produced their frames (as stored with them)."""
        self.extractor = self._extractor("xclip-clips")
        self.prompt_extractor = self._extractor("xclip-prompt")
        self._store: FeatureStore | None = None
        self._prompt_cache: dict[str, np.ndarray] = {}

    def _extractor(self, name: str) -> Any:
        from bench.store import Extractor

        p = self.params
        return Extractor(name, {
            "model": model_key(self.resolved), "weights": weights_tag(self.resolved), "fps": p.fps,
            "clip_frames": self.clip_len, "stride_frames": p.stride_frames,
            "transform": self.transform.signature(), "dtype": dtype_name(self.dtype),
            # The key names its precision already; a GPU (TF32 float32, on-device resizing)
            # gives other numbers than the CPU, so it adds its device. CPU keys are unchanged.
            **device_key(self.device, dtype_name(self.dtype), dtype_name(self.dtype)),
            **({"sampling": "keyframes"} if p.sampling == "keyframes" else {}),
        }, version=FEATURES_VERSION)

    # -- encoding ----------------------------------------------------------------------------

    def encode_clip_pixels(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed clips float ``(c, T, 3, H, W)`` -> unit video embeddings float32
        ``(c, D)`` and prompt features (patch tokens averaged over the clip's frames) float16
        ``(c, P, D)``: the two things X-CLIP's forward pass computes from the video."""
        with self._calls_lock:
            self.encoder_calls += 1
        m = self.model
        c, t = int(pixels.shape[0]), int(pixels.shape[1])
        x = pixels.reshape(c * t, *pixels.shape[2:]).to(self.device, self.dtype, non_blocking=True)
        with self._torch.inference_mode():
            out = m.vision_model(pixel_values=x)
            cls = m.visual_projection(out.pooler_output).view(c, t, -1)
            video = pooled(m.mit(cls)).float()
            tokens = m.prompts_visual_layernorm(out.last_hidden_state[:, 1:, :])
            prompt = (tokens @ m.prompts_visual_projection).view(c, t, tokens.shape[1], -1).mean(dim=1)
        return unit_rows(video.cpu().numpy()), prompt.to(self._torch.float16).cpu().numpy()

    def encode_videos(self, videos: Sequence[tuple[Path, ProbeInfo]]) -> Iterator[tuple[int, Outcome]]:
        """Sampled frames of each ``(path, info)`` -> clip embeddings, as ``(position,
        outcome)`` when each video is done: ``({"emb": float32 (c, D), "frame_times_s": float64
        (n,), "clip_frames": int64 (c, 2)}, meta)``, or the error its decoding raised. The
        clips' prompt features are saved as extractor ``xclip-prompt`` before the outcome is
        yielded. A clip never spans two videos, but an encoder call takes clips of several
        (decoding runs on across videos too); only frames of clips in flight are held."""
        p = self.params
        per_call = max(1, p.batch_for(self.device) // self.clip_len)  # clips per encoder call
        windows: dict[int, _Windows] = {}
        queue: list[tuple[int, torch.Tensor]] = []  # (position, one clip's frames), in order
        # Encoder calls in flight, oldest first: the videos of their clips, and the result.
        in_flight: deque[tuple[list[int], Future[tuple[np.ndarray, np.ndarray]]]] = deque()
        clips = sum(max(1.0, (info.duration_s * p.fps - self.clip_len) / p.stride_frames + 1)
                    for _, info in videos)
        workers = EncoderWorkers(p.workers_for(self.device, clips / per_call))

        def call(pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            with stage("encode", items=int(pixels.shape[0]) * self.clip_len):
                return self.encode_clip_pixels(pixels)

        def collect() -> None:
            """Hand the clips of finished calls to their windows, oldest call first (a video
            that failed meanwhile has no window: its clips are dropped)."""
            while in_flight and in_flight[0][1].done():
                positions, result = in_flight.popleft()
                emb, prompt = result.result()
                for i, position in enumerate(positions):
                    if (w := windows.get(position)) is not None:
                        w.done(emb[i], prompt[i])

        def make_room() -> None:
            """Wait until a worker is free, and fewer than ``2 * workers`` calls are held: a
            free worker takes the next call even while an older call still runs."""
            while True:
                collect()
                running = [f for _, f in in_flight if not f.done()]
                if len(running) < workers.workers and len(in_flight) < 2 * workers.workers:
                    return
                wait(running, return_when=FIRST_COMPLETED)

        def encode(n: int) -> None:
            chunk, queue[:n] = queue[:n], []
            pixels = self._torch.stack([clip for _, clip in chunk])
            if self.device == "cuda":
                # Clips share frames, so they are stacked here; pinning the stack (not the
                # stream's batches too) keeps it to one host copy and an asynchronous upload.
                pixels = pixels.pin_memory()
            make_room()
            in_flight.append(([position for position, _ in chunk], workers.submit(call, pixels)))

        def finished(position: int) -> Iterator[tuple[int, Outcome]]:
            w = windows[position]
            if not w.complete:
                return
            del windows[position]
            path, info = videos[position]
            if w.seen == 0:
                yield position, BadInput(f"{path}: no frames could be sampled")
                return
            arrays, prompt = w.arrays()
            if self._store is not None:
                self._store.save(self._store.video_id(path), self.prompt_extractor,
                                 {"prompt": prompt}, {"n_clips": len(prompt)})
            yield position, (arrays, {"n_frames": w.seen, "n_clips": len(prompt),
                                      "duration_s": info.duration_s, "decoder": "+".join(sorted(w.decoders))})

        stream = preprocessed_stream([path for path, _ in videos], fps=p.fps, transform=self.transform,
                                     batch_size=p.batch_for(self.device), decoder=p.decoder,
                                     depth=p.prefetch, threads=p.threads_for(self.device),
                                     video_s=sum(info.duration_s for _, info in videos), pin_memory=False,
                                     decode_processes=p.processes_for(self.device, len(videos)),
                                     keyframes_only=p.sampling == "keyframes")
        with workers, closing(stream):
            for item in stream:
                if isinstance(item, VideoEnd):
                    if item.error is not None:
                        windows.pop(item.position, None)
                        queue[:] = [q for q in queue if q[0] != item.position]
                        yield item.position, item.error
                        continue
                    w = windows.setdefault(item.position, _Windows(self.clip_len, p.stride_frames))
                    w.end, w.decoders = item.n_frames, item.decoders
                    touched = [item.position]
                else:
                    touched = list(dict.fromkeys(item.owner.tolist()))
                    for position in touched:
                        rows = np.flatnonzero(item.owner == position)
                        w = windows.setdefault(position, _Windows(self.clip_len, p.stride_frames))
                        assert item.pixels is not None  # X-CLIP preprocesses in the prefetch thread
                        w.add(item.pixels[int(rows[0]):int(rows[-1]) + 1], item.times_s[rows])
                for position in touched:
                    queue.extend((position, clip) for clip in windows[position].ready_clips())
                while len(queue) >= per_call:
                    encode(per_call)
                collect()
                for position in list(windows):
                    yield from finished(position)
            while queue:
                encode(per_call)
            wait([future for _, future in in_flight])
            collect()
            for position in list(windows):
                yield from finished(position)

    def encode_video(self, path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """One video's :meth:`encode_videos` outcome; raises its decoding error."""
        return only_outcome(self.encode_videos([(path, info)]), path)

    # -- indexing ----------------------------------------------------------------------------

    def index(self, videos: Sequence[Video], store: FeatureStore) -> None:
        """Embed (cached, resumable) the clips of ``videos`` and make them searchable."""
        from bench.store import index_videos

        self._store = store
        # A clip row without its prompt features (deleted or damaged) is recomputed.
        for video in videos:
            path = video.resolve(None)
            if path is not None and path.is_file():
                vid_id = store.video_id(path)
                if store.status(vid_id, self.extractor) == "done" and \
                        store.status(vid_id, self.prompt_extractor) != "done":
                    store.mark_failed(vid_id, self.extractor, "prompt features missing; recomputing")
        done = index_videos(store, videos, self.extractor, self.encode_video, desc=f"index {self.name}",
                            stream=self.encode_videos if self.params.stream_videos else None)
        self.corpus.persist_in(store, f"vector-index/{self.extractor.key}")
        for video in videos:
            video_id = done.get(video.vid)
            if video_id is None:
                continue
            arrays = store.load(video_id, self.extractor)
            meta = store.load_meta(video_id, self.extractor) or {}
            if arrays is None:
                raise BadInput(f"{video.vid}: clip features vanished from the store; index again")
            times = arrays["frame_times_s"].astype(np.float64)
            clip_frames = arrays["clip_frames"].astype(np.int64)
            count_decoder(self.decoders_used, meta)
            duration = float(meta.get("duration_s") or video.duration or times[-1] + 1.0 / self.params.fps)
            self.corpus.add(VideoVectors(video.vid, video_id, times[clip_frames[:, 0]],
                                         arrays["emb"].astype(np.float32), duration))
            self.spans[video.vid] = _ClipSpans(times, clip_frames)
            self._prompt_cache.pop(video.vid, None)
        self.extents = VideoExtents.build(self.params.extent, videos, store, into=self.extents)

    # -- search ------------------------------------------------------------------------------

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Projected text features float32 ``(n, D)``, not normalized (the prompt generator
        takes them raw)."""
        inputs = self.tokenize([self.params.prompt.replace("{}", t) for t in texts], self.device)
        with self._torch.inference_mode():
            return pooled(self.model.get_text_features(**inputs)).float().cpu().numpy()  # type: ignore[no-any-return]

    def encode_image_as_clip(self, path: str) -> np.ndarray:
        """A still clip (the image repeated ``clip_len`` times) -> unit float32 ``(D,)``."""
        pixels = self.transform(load_image(path)[None])
        clip = pixels.unsqueeze(0).expand(1, self.clip_len, *pixels.shape[1:])
        return self.encode_clip_pixels(clip)[0][0]

    # -- search (the engine calls these; see bench.engine) ------------------------------------

    def ready(self) -> str | None:
        return None if self.corpus.videos else "nothing indexed; call index() before search()"

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        return [self.corpus.get(v).vid for v in vids]

    def prepare(self, queries: Sequence[QueryInput], vids: Sequence[str] | None) -> list[_Query]:
        """The unit query vector (text, image as a still clip, or both) and the raw text features
        the re-scoring needs; BadInput for an empty query."""
        for i, q in enumerate(queries):
            if not (q.text and q.text.strip()) and q.image is None:
                raise BadInput(f"query {q.qid if q.qid is not None else i}: empty; give text or an image")
        out = []
        for q in queries:
            with stage("query_encode", items=1):
                raw = self.encode_text([str(q.text)])[0] if q.text and q.text.strip() else None
                qv = unit_rows(raw[None])[0] if raw is not None else np.zeros(self.dim, np.float32)
                if q.image is not None:
                    qv = unit_rows((qv + self.encode_image_as_clip(q.image))[None])[0]
            out.append(_Query(qv, raw, q.image is not None))
        return out

    def candidates(self, prepared: _Query, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        """The given videos, or in corpus search those of the ``corpus_clips`` nearest clips."""
        if vids is None:
            vids = self.corpus.top_videos(prepared.vector, self.params.corpus_clips, top_k)
        return [Candidate(vid) for vid in vids]

    def windows_per_video(self, top_k: int) -> int:
        return max(top_k, self.params.rerank_top)

    def score(self, prepared: _Query, candidate: Candidate, max_windows: int) -> Curve:
        """The per-frame curve: the best score of the clips covering each frame."""
        vid = candidate.vid
        item = self.corpus.get(vid)
        spans = self.spans[vid]
        clip_scores = item.vectors @ prepared.vector
        n_frames = spans.frame_times_s.shape[0]
        curve = np.full(n_frames, -np.inf)
        for (lo, hi), s in zip(spans.clip_frames.tolist(), clip_scores.tolist(), strict=True):
            np.maximum(curve[lo:hi + 1], s, out=curve[lo:hi + 1])
        curve[~np.isfinite(curve)] = float(clip_scores.min())
        starts, ends = self._clip_windows(vid)

        def explain(w: Window) -> ClipEvidence:
            inside = np.flatnonzero((starts < w.end) & (ends > w.start))
            inside = inside[np.argsort(-clip_scores[inside], kind="stable")]
            ranked = tuple((int(k), float(clip_scores[k])) for k in inside.tolist())
            best = sorted((ClipMatch(float(starts[k]), float(ends[k]), s) for k, s in ranked[:3]),
                          key=lambda c: c.start_s)
            return ClipEvidence(tuple(best), ranked=ranked)

        return Curve(spans.frame_times_s, curve, item.duration_s, self.params.fps, self.params.proposals,
                     explain)

    def finish(self, prepared: _Query, moments: list[Moment], top_k: int) -> list[Moment]:
        """The best ``max(top_k, rerank_top)`` moments, re-scored for text-only queries."""
        moments = moments[:self.windows_per_video(top_k)]
        if prepared.image or self.params.rerank_top <= 0 or prepared.raw is None:
            return moments
        return self._rerank(moments, prepared.raw)

    def _clip_windows(self, vid: str) -> tuple[np.ndarray, np.ndarray]:
        """Each clip's (start_s, end_s), float64 ``(c,)`` each."""
        spans = self.spans[vid]
        span = 1.0 / self.params.fps
        item = self.corpus.get(vid)
        starts = spans.frame_times_s[spans.clip_frames[:, 0]]
        ends = np.minimum(spans.frame_times_s[spans.clip_frames[:, 1]] + span, item.duration_s)
        return starts, ends

    def _prompt_features(self, vid: str) -> np.ndarray | None:
        if vid in self._prompt_cache:
            return self._prompt_cache[vid]
        if self._store is None:
            return None
        arrays = self._store.load(self.corpus.get(vid).video_id, self.prompt_extractor)
        if arrays is None:
            log.warning("%s: prompt features of %s are missing; its moments are not re-scored "
                        "(index again to recompute them)", self.name, vid)
            return None
        if len(self._prompt_cache) >= 8:  # a few videos' worth; they are large (clips x 49 x D)
            self._prompt_cache.pop(next(iter(self._prompt_cache)))
        self._prompt_cache[vid] = arrays["prompt"]
        return arrays["prompt"]

    def _rerank(self, moments: list[Moment], raw_text: np.ndarray) -> list[Moment]:
        """Score each moment by its best plain clip's video-conditioned cosine; a moment whose
        best clip already scored a better one is dropped. If any moment's prompt features are
        missing, none is re-scored (one scale per list)."""
        torch = self._torch
        picks: list[tuple[int, int]] = []  # (moment index, clip index)
        feats: list[np.ndarray] = []
        used: set[tuple[str, int]] = set()
        kept: list[Moment] = []
        for m in moments:
            prompt = self._prompt_features(m.vid)
            ranked = m.evidence.ranked if isinstance(m.evidence, ClipEvidence) else ()
            if prompt is None or not ranked:
                return moments
            k = ranked[0][0]
            if (m.vid, k) in used:
                continue  # same best clip as a better window: it would get the same score
            used.add((m.vid, k))
            picks.append((len(kept), k))
            kept.append(m)
            feats.append(prompt[k])
        conditioned: dict[int, float] = {}
        if picks:
            with torch.inference_mode():
                visual = torch.from_numpy(np.stack(feats)).to(self.device, self.dtype)
                text = torch.from_numpy(raw_text).to(self.device, self.dtype)
                text = text.view(1, 1, -1).expand(len(picks), 1, -1)
                text = text + self.model.prompts_generator(text, visual)
                text_unit = torch.nn.functional.normalize(text.float()[:, 0, :], dim=-1).cpu().numpy()
            for (mi, k), t in zip(picks, text_unit, strict=True):
                conditioned[mi] = float(self.corpus.get(kept[mi].vid).vectors[k] @ t)
        out = []
        for mi, m in enumerate(kept):
            assert isinstance(m.evidence, ClipEvidence)
            evidence = dataclasses.replace(m.evidence, reranked=True, plain_score=m.score)
            out.append(Moment(m.vid, m.start, m.end, conditioned[mi], evidence))
        return out

    # -- reporting ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        index = self.corpus._index
        return {"videos": len(self.corpus.videos), "clips": len(self.corpus),
                "encoder_calls": self.encoder_calls, "vector_index": index.stats() if index else None,
                "vector_index_from_cache": self.corpus.index_from_cache}

    def provenance(self) -> dict[str, Any]:
        return {"family": self.family,
                "model": {**self.resolved.provenance(), "weights": weights_tag(self.resolved)},
                "device": self.device, "dtype": dtype_name(self.dtype), "fps": self.params.fps,
                "clip_frames": self.clip_len, "stride_frames": self.params.stride_frames,
                "rerank_top": self.params.rerank_top, "decoder": self.params.decoder,
                "decoders_used": dict(sorted(self.decoders_used.items())),
                "transform": self.transform.signature(), "extractor": self.extractor.key,
                "random_init": self.resolved.random_init}
