"""Every LLM call cached on disk and counted: tokens in/out, latency, estimated cost, hits/misses.

Keys hash the backend kind, model id and revision, prompt revision and the full request;
never an API key, an endpoint URL or a machine path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BackendError
from bench.fsio import atomic_write_json
from bench.llm.backends import Completion, LLMBackend
from bench.llm.prompts import Message
from bench.paths import cache_home
from bench.timing import stage

log = logging.getLogger("bench")


class LLMCache:
    """JSON files under ``root/<2 hex>/<64 hex>.json``, written to a temp file and renamed."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_home() / "llm"

    @staticmethod
    def key(*, backend: str, model: str, revision: str | None, prompt_revision: str,
            request: dict[str, Any]) -> str:
        """sha256 hex over the canonical JSON of what determines the answer."""
        doc = {"backend": backend, "model": model, "revision": revision,
               "prompt_revision": prompt_revision, "request": request}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or None when absent. A damaged file is removed and logged."""
        path = self.path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("LLM cache entry %s is unreadable (%s); it will be recomputed", path, exc)
            path.unlink(missing_ok=True)
            return None
        return data if isinstance(data, dict) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Atomic: readers see the old file or the new one, never a partial write."""
        atomic_write_json(self.path(key), entry)


@dataclass
class CallRecord:
    """One chat call as the benchmark sees it (a cache hit costs no time and no money)."""

    purpose: str
    """``localize``, ``summary`` or ``vlm``."""
    tag: str
    """Free label: the video id and, for queries, the query id."""
    tokens_in: int
    tokens_out: int
    latency_s: float
    cached: bool
    cost_usd: float
    error: str | None = None


@dataclass
class Pricing:
    """US dollars per 1,000 tokens; 0 for local models and unpriced endpoints."""

    in_per_1k: float = 0.0
    out_per_1k: float = 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return tokens_in / 1000.0 * self.in_per_1k + tokens_out / 1000.0 * self.out_per_1k


@dataclass
class LLMClient:
    """A backend with the on-disk cache and per-call records in front of it."""

    backend: LLMBackend
    prompt_revision: str
    cache: LLMCache | None = field(default_factory=LLMCache)
    pricing: Pricing = field(default_factory=Pricing)
    records: list[CallRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def chat(self, messages: list[Message], *, max_new_tokens: int, purpose: str,
             tag: str = "") -> Completion:
        """The model's answer to ``messages`` (greedy), from the cache when it holds it.

        Raises :class:`~bench.errors.BackendError` when the backend fails after its
        retries (recorded, never cached) and :class:`~bench.errors.Unavailable` for
        authentication errors.
        """
        b = self.backend
        request = {"messages": messages, "max_new_tokens": max_new_tokens, "temperature": 0.0}
        key = LLMCache.key(backend=b.kind, model=b.model, revision=b.revision,
                           prompt_revision=self.prompt_revision, request=request)
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None and isinstance(hit.get("text"), str):
            done = Completion(text=hit["text"], tokens_in=int(hit.get("tokens_in", 0)),
                              tokens_out=int(hit.get("tokens_out", 0)), latency_s=0.0,
                              finish_reason=hit.get("finish_reason"), cached=True)
            self._record(CallRecord(purpose, tag, done.tokens_in, done.tokens_out, 0.0, True, 0.0))
            return done
        t0 = time.perf_counter()
        try:
            with stage("llm", items=1):
                done = b.generate(messages, max_new_tokens=max_new_tokens)
        except BackendError as exc:
            self._record(CallRecord(purpose, tag, 0, 0, time.perf_counter() - t0, False, 0.0, str(exc)))
            raise
        cost = self.pricing.cost(done.tokens_in, done.tokens_out)
        self._record(CallRecord(purpose, tag, done.tokens_in, done.tokens_out, done.latency_s, False, cost))
        if self.cache is not None:
            self.cache.put(key, {"text": done.text, "tokens_in": done.tokens_in,
                                 "tokens_out": done.tokens_out, "finish_reason": done.finish_reason,
                                 "latency_s": done.latency_s, "model": b.model,
                                 "prompt_revision": self.prompt_revision})
        return done

    def reset(self) -> None:
        """Forget the call records (the on-disk cache is kept)."""
        with self._lock:
            self.records.clear()

    def _record(self, rec: CallRecord) -> None:
        with self._lock:
            self.records.append(rec)

    def stats(self) -> dict[str, Any]:
        """Totals over every call so far (JSON-able; goes into result files).

        ``tokens_in``/``tokens_out`` count every call, cached or not (what the method needs);
        ``cost_usd`` and ``latency_s`` count only calls that reached the backend (what this
        run spent); ``cost_usd_uncached`` is what the same calls cost without a cache.
        """
        with self._lock:
            recs = list(self.records)
        hits = sum(r.cached for r in recs)
        ok = [r for r in recs if r.error is None]
        misses = sum(not r.cached for r in ok)
        by_purpose: dict[str, int] = {}
        for r in recs:
            by_purpose[r.purpose] = by_purpose.get(r.purpose, 0) + 1
        return {
            "backend": self.backend.kind, "model": self.backend.model,
            "prompt_revision": self.prompt_revision,
            "calls": len(recs), "calls_by_purpose": by_purpose,
            "cache_hits": hits, "cache_misses": misses,
            "cache_hit_rate": hits / (hits + misses) if hits + misses else 0.0,
            "errors": sum(r.error is not None for r in recs),
            "tokens_in": sum(r.tokens_in for r in ok), "tokens_out": sum(r.tokens_out for r in ok),
            "latency_s": sum(r.latency_s for r in recs if not r.cached),
            "cost_usd": sum(r.cost_usd for r in ok),
            "cost_usd_uncached": sum(self.pricing.cost(r.tokens_in, r.tokens_out) for r in ok),
            "price_per_1k": asdict(self.pricing),
        }
