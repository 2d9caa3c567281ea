"""``clip-frames``: a CLIP-style image tower on frames sampled at a fixed rate, matched to a
text (or image) query; the per-frame similarity curve becomes moments via proposals.

Frames are decoded and preprocessed in a background thread while the encoder runs, embedded
in batches, L2-normalized and cached per video in the feature store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from bench.devices import device_key
from bench.engine.extent import ExtentConfig, VideoExtents
from bench.engine.proposals import ProposalConfig
from bench.engine.search import Candidate, Curve, EngineSearch
from bench.errors import BadInput, Unavailable
from bench.evidence import FrameEvidence, FrameMatch
from bench.index.corpus import EmbeddingCorpus, VideoVectors
from bench.modelref import ModelRef, ResolvedModel
from bench.retrievers.base import RetrieverConfig, parse_params
from bench.spans import Window
from bench.timing import stage
from bench.types import QueryInput, Video
from bench.video.stream import (
    StreamBatch,
    VideoEnd,
    count_decoder,
    encoded_stream,
    only_outcome,
    preprocessed_stream,
)
from bench.vision.device_input import DeviceInput, to_host
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

DEFAULT_MODEL = ModelRef(id="openai/clip-vit-base-patch32",
                         revision="3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268")
FEATURES_VERSION = "1"
"""Bumped when the stored frame features change for the same parameters."""


def _frame_proposals() -> ProposalConfig:
    # Frame similarities are noisy at 1 fps; 2 s of smoothing finds the peak of a scene
    # rather than a single lucky frame, and a moment is at least 2 s long.
    return ProposalConfig(strategy="peak", smooth_s=2.0, rel_threshold=0.5, min_len_s=2.0, nms_iou=0.5)


class Params(VisualParams):
    """``params`` of a ``clip-frames`` configuration."""

    proposals: ProposalConfig = Field(default_factory=_frame_proposals)
    extent: ExtentConfig = Field(default_factory=ExtentConfig)
    """How hits snap to shots, scenes and speech turns (see :class:`~bench.engine.extent.ExtentConfig`)."""
    corpus_frames: int = Field(default=256, ge=1)
    """Corpus search: frames fetched from the vector index to pick candidate videos."""


class _TextTower:
    """Text queries -> unit vectors in the image tower's space."""

    def __init__(self, encode: Any, describe: dict[str, Any]) -> None:
        self.encode = encode
        self.describe = describe


class ClipFrames(EngineSearch):
    """The ``clip-frames`` family (CLIP, SigLIP, multilingual CLIP text tower).

    ``config.model`` is the image-text model (default ``openai/clip-vit-base-patch32``);
    ``config.models["text"]``, when set, is a sentence-transformers text tower trained into
    the image tower's space (``clip-ViT-B-32-multilingual-v1``). Raises
    :class:`~bench.errors.Unavailable` when weights cannot be loaded.

    Scores are cosine similarities (comparable across videos of one model). Grounding
    (``vids`` given) runs proposals on each video's frame curve; corpus search fetches the
    ``corpus_frames`` best frames from the vector index, then runs proposals on the videos
    they belong to.
    """

    family = "clip-frames"

    def __init__(self, config: RetrieverConfig, device: str = "cpu") -> None:
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise Unavailable(f"{config.name}: clip-frames needs torch and transformers ({exc})") from None
        self._torch = torch
        self.name = config.name
        self.config = config
        self.device = device
        self.params: Params = parse_params(Params, config)
        if "{}" not in self.params.prompt:
            raise BadInput(f"retriever {config.name!r}: params.prompt must contain '{{}}' for the query")
        self.model_ref = config.model or DEFAULT_MODEL
        self.resolved: ResolvedModel = resolve_or_unavailable(self.model_ref)
        self.dtype = torch_dtype(self.params.dtype, device)
        model = load_pretrained(AutoModel.from_pretrained, self.model_ref, self.resolved, dtype=self.dtype)
        if not hasattr(model, "get_image_features"):
            raise BadInput(f"{self.model_ref.id} ({type(model).__name__}) has no image tower; "
                           "clip-frames needs a CLIP-style model")
        self.model = model.to(device).eval()
        self.transform = ImageTransform.from_config(image_processor_config(self.model_ref, self.resolved))
        self.device_input = DeviceInput(self.transform, device, self.dtype)
        self.dim = int(self.model.config.projection_dim if hasattr(self.model.config, "projection_dim")
                       else self.model.config.vision_config.hidden_size)
        self.text_ref: ModelRef | None = config.models.get("text")
        self.text_resolved: ResolvedModel | None = None
        self.text = self._load_text_tower(AutoTokenizer)
        self.corpus = EmbeddingCorpus(self.dim, index_kind=self.params.index_kind, device=device)
        self.encoder_calls = 0
        """Image-tower forward passes so far (tests use it to prove the cache is used)."""
        self._calls_lock = threading.Lock()  # encoder workers count their calls too
        self.decoders_used: dict[str, int] = {}
        """Indexed videos per decoder that produced their frames (as stored with them)."""
        self.extractor = self._extractor()

    # -- models ------------------------------------------------------------------------------

    def _load_text_tower(self, auto_tokenizer: Any) -> _TextTower:
        if self.text_ref is not None:
            return self._load_sentence_transformer(self.text_ref)
        tokenizer = load_pretrained(auto_tokenizer.from_pretrained, self.model_ref, self.resolved)
        text_cfg = self.model.config.text_config
        max_len = int(getattr(text_cfg, "max_position_embeddings", 77))
        # SigLIP was trained on text padded to its full length; CLIP pads to the longest.
        padding: str | bool = "max_length" if self.model.config.model_type == "siglip" else True
        qtok = QueryTokenizer(tokenizer, max_len, padding)

        def encode(texts: list[str]) -> np.ndarray:
            inputs = qtok(texts, self.device)
            with self._torch.inference_mode():
                feats = pooled(self.model.get_text_features(**inputs)).float()
            return unit_rows(feats.cpu().numpy())

        return _TextTower(encode, {"tower": "model", "max_tokens": max_len})

    def _load_sentence_transformer(self, ref: ModelRef) -> _TextTower:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise Unavailable(f"{self.name}: the text tower {ref.id} needs sentence-transformers "
                              f"({exc})") from None
        self.text_resolved = resolve_or_unavailable(ref)
        st = load_pretrained(SentenceTransformer, ref, self.text_resolved, device=self.device)
        # sentence-transformers >= 6 renamed the method; older releases have only the first.
        get_dim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        dim = get_dim()
        if dim != self.dim:
            raise BadInput(f"text tower {ref.id} gives {dim}-d vectors but the image tower gives "
                           f"{self.dim}-d; pair it with the image model it was trained against")
        max_len = int(st.max_seq_length or 128)
        qtok = QueryTokenizer(st.tokenizer, max_len)

        def encode(texts: list[str]) -> np.ndarray:
            clipped = [qtok.clip_text(t) for t in texts]
            qtok.check_truncation(texts, clipped)
            vecs = st.encode(clipped, convert_to_numpy=True, normalize_embeddings=True,
                             show_progress_bar=False)
            return unit_rows(np.asarray(vecs, dtype=np.float32))

        return _TextTower(encode, {"tower": "sentence-transformers", "max_tokens": max_len})

    def _extractor(self) -> Any:
        from bench.store import Extractor

        p = self.params
        return Extractor("clip-frames", {
            "model": model_key(self.resolved), "weights": weights_tag(self.resolved), "fps": p.fps,
            "transform": self.transform.signature(), "dtype": dtype_name(self.dtype),
            # The key names its precision already; a GPU (TF32 float32, on-device resizing)
            # gives other numbers than the CPU, so it adds its device. CPU keys are unchanged.
            **device_key(self.device, dtype_name(self.dtype), dtype_name(self.dtype)),
            **({"sampling": "keyframes"} if p.sampling == "keyframes" else {}),
        }, version=FEATURES_VERSION)

    # -- indexing ----------------------------------------------------------------------------

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Preprocessed float ``(n, 3, H, W)`` (on the CPU or the device) -> float32 ``(n, d)``
        unit vectors."""
        with self._calls_lock:
            self.encoder_calls += 1
        x = pixels.to(self.device, self.dtype, non_blocking=True)
        with self._torch.inference_mode():
            feats = pooled(self.model.get_image_features(pixel_values=x))
            return unit_rows(to_host(feats))

    def encode_batch(self, batch: StreamBatch) -> np.ndarray:
        """One stream batch -> float32 ``(n, d)`` unit vectors: its preprocessed pixels, or its
        raw frames preprocessed on the device (timed as stage ``encode``, copies included)."""
        with stage("encode", items=len(batch.times_s)), self.device_input.compute():
            if batch.pixels is not None:
                return self.encode_pixels(batch.pixels)
            with self._torch.inference_mode():
                pixels = self.device_input(batch.frames)
            return self.encode_pixels(pixels)

    def encode_videos(self, videos: Sequence[tuple[Path, ProbeInfo]]) -> Iterator[tuple[int, Outcome]]:
        """Sampled frames of each ``(path, info)`` -> ``(position, outcome)`` as each video is
        done: ``({"emb": float32 (n, d), "times_s": float64 (n,)}, meta)``, or the error that
        video's decoding raised. Encoder batches span video boundaries."""
        p = self.params
        parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        got: dict[int, int] = {}
        ends: dict[int, VideoEnd] = {}

        def finished(position: int) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
            end = ends.get(position)
            if end is None or end.error is not None or got.get(position, 0) != end.n_frames:
                return None
            chunks = parts.pop(position)
            arrays = {"emb": np.concatenate([e for e, _ in chunks]),
                      "times_s": np.concatenate([t for _, t in chunks])}
            return arrays, {"n_frames": end.n_frames, "duration_s": videos[position][1].duration_s,
                            "decoder": "+".join(sorted(end.decoders))}

        video_s = sum(info.duration_s for _, info in videos)
        batch_size = p.batch_for(self.device)
        workers = p.workers_for(self.device, video_s * p.fps / batch_size)
        stream = preprocessed_stream([path for path, _ in videos], fps=p.fps, transform=self.transform,
                                     batch_size=batch_size, decoder=p.decoder, depth=p.prefetch,
                                     threads=p.threads_for(self.device), video_s=video_s,
                                     pin_memory=self.device == "cuda", workers=workers,
                                     raw=p.on_device(self.device),
                                     decode_processes=p.processes_for(self.device, len(videos)),
                                     keyframes_only=p.sampling == "keyframes")
        for item, emb in encoded_stream(stream, self.encode_batch, workers=workers):
            if isinstance(item, VideoEnd):
                ends[item.position] = item
                if item.error is not None or item.n_frames == 0:
                    parts.pop(item.position, None)
                    path = videos[item.position][0]
                    yield item.position, item.error or BadInput(f"{path}: no frames could be sampled")
                    continue
                touched = [item.position]
            else:
                assert emb is not None
                touched = list(dict.fromkeys(item.owner.tolist()))
                for position in touched:
                    rows = item.owner == position
                    parts.setdefault(position, []).append((emb[rows], item.times_s[rows]))
                    got[position] = got.get(position, 0) + int(rows.sum())
            for position in touched:
                if (result := finished(position)) is not None:
                    yield position, result

    def encode_video(self, path: Path, info: ProbeInfo) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """All sampled frames of one video -> ``{"emb": float32 (n, d), "times_s": float64 (n,)}``."""
        return only_outcome(self.encode_videos([(path, info)]), path)

    def index(self, videos: Sequence[Video], store: FeatureStore) -> None:
        """Embed (cached, resumable) the sampled frames of ``videos`` and make them searchable.

        Videos that fail to decode are recorded in the store and left out (logged)."""
        from bench.retrievers.workers import encoder_recipe
        from bench.store import index_videos

        done = index_videos(store, videos, self.extractor, self.encode_video, desc=f"index {self.name}",
                            stream=self.encode_videos if self.params.stream_videos else None,
                            worker=encoder_recipe(self.config, self.device))
        self.corpus.persist_in(store, f"vector-index/{self.extractor.key}")
        for video in videos:
            video_id = done.get(video.vid)
            if video_id is None:
                continue
            arrays = store.load(video_id, self.extractor)
            meta = store.load_meta(video_id, self.extractor) or {}
            if arrays is None:
                raise BadInput(f"{video.vid}: frame features vanished from the store; index again")
            count_decoder(self.decoders_used, meta)
            duration = float(meta.get("duration_s") or video.duration or
                             float(arrays["times_s"][-1]) + 1.0 / self.params.fps)
            self.corpus.add(VideoVectors(video.vid, video_id, arrays["times_s"].astype(np.float64),
                                         arrays["emb"].astype(np.float32), duration))
        self.extents = VideoExtents.build(self.params.extent, videos, store, into=self.extents)

    # -- search ------------------------------------------------------------------------------

    def encode_queries(self, queries: Sequence[QueryInput]) -> np.ndarray:
        """float32 ``(q, d)`` unit vectors: the text, the image, or the normalized sum of both.

        BadInput for a query with neither text nor image, or an image file that is not one."""
        texts: list[tuple[int, str]] = []
        images: list[tuple[int, np.ndarray]] = []
        for i, q in enumerate(queries):
            has_text = bool(q.text and q.text.strip())
            if not has_text and q.image is None:
                raise BadInput(f"query {q.qid if q.qid is not None else i}: empty; give text or an image")
            if has_text:
                texts.append((i, self.params.prompt.replace("{}", str(q.text))))
            if q.image is not None:
                images.append((i, load_image(q.image)))
        out = np.zeros((len(queries), self.dim), dtype=np.float32)
        with stage("query_encode", items=len(queries)):
            if texts:
                out[[i for i, _ in texts]] += self.text.encode([t for _, t in texts])
            for i, image in images:
                out[i] += self.encode_pixels(self.transform(image[None]))[0]
        return unit_rows(out)

    # -- search (the engine calls these; see bench.engine) ------------------------------------

    def ready(self) -> str | None:
        return None if self.corpus.videos else "nothing indexed; call index() before search()"

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        return [self.corpus.get(v).vid for v in vids]

    def prepare(self, queries: Sequence[QueryInput], vids: Sequence[str] | None) -> list[np.ndarray]:
        """float32 ``(d,)`` unit vector per query (BadInput for an empty query or a bad image)."""
        return list(self.encode_queries(queries))

    def candidates(self, prepared: np.ndarray, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        """The given videos, or in corpus search those of the ``corpus_frames`` nearest frames."""
        if vids is None:
            vids = self.corpus.top_videos(prepared, self.params.corpus_frames, top_k)
        return [Candidate(vid) for vid in vids]

    def score(self, prepared: np.ndarray, candidate: Candidate, max_windows: int) -> Curve:
        """Cosine similarity of each sampled frame and the query."""
        item = self.corpus.get(candidate.vid)
        curve = item.vectors @ prepared

        def explain(w: Window) -> FrameEvidence:
            return frame_evidence(item.times_s, curve, w.start, w.end)

        return Curve(item.times_s, curve, item.duration_s, self.params.fps, self.params.proposals, explain)

    # -- reporting ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        index = self.corpus._index
        return {"videos": len(self.corpus.videos), "frames": len(self.corpus),
                "encoder_calls": self.encoder_calls, "vector_index": index.stats() if index else None,
                "vector_index_from_cache": self.corpus.index_from_cache}

    def provenance(self) -> dict[str, Any]:
        prov: dict[str, Any] = {
            "family": self.family,
            "model": {**self.resolved.provenance(), "weights": weights_tag(self.resolved)},
            "device": self.device, "dtype": dtype_name(self.dtype), "fps": self.params.fps,
            "batch_size": self.params.batch_for(self.device),
            "preprocess": "device" if self.params.on_device(self.device) else "producer",
            "sampling": self.params.sampling,
            "decoder": self.params.decoder, "decoders_used": dict(sorted(self.decoders_used.items())),
            "transform": self.transform.signature(),
            "text_tower": self.text.describe, "extractor": self.extractor.key,
            "random_init": self.resolved.random_init,
        }
        if self.text_resolved is not None:
            prov["text_model"] = self.text_resolved.provenance()
            prov["random_init"] = prov["random_init"] or self.text_resolved.random_init
        return prov


def frame_evidence(times_s: np.ndarray, curve: np.ndarray, start: float, end: float,
                   max_frames: int = 5) -> FrameEvidence:
    """The best frames inside ``[start, end)`` (in time order) and the best one's time."""
    inside = np.flatnonzero((times_s >= start - 1e-6) & (times_s < end))
    if inside.size == 0:
        return FrameEvidence((), None)
    best = inside[np.argsort(-curve[inside], kind="stable")[:max_frames]]
    frames = tuple(FrameMatch(float(times_s[i]), float(curve[i])) for i in sorted(best.tolist()))
    return FrameEvidence(frames, float(times_s[best[0]]))
