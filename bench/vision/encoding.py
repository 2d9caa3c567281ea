"""What goes into and comes out of the towers: text queries tokenized for the text tower,
pooled features, unit-norm rows.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BadInput

if TYPE_CHECKING:
    import torch

log = logging.getLogger("bench")


class QueryTokenizer:
    """Tokenize text queries for a CLIP-style text tower: truncate to ``max_length`` tokens,
    logging one warning (per tokenizer) the first time a query is cut."""

    def __init__(self, tokenizer: Any, max_length: int, padding: str | bool = True) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding = padding
        self.warned = False

    def clip_text(self, text: str) -> str:
        """Whitespace-collapsed text cut to what can survive truncation.

        Every token holds at least one byte of non-space text, so once whitespace is
        collapsed nothing past ``2 * max_length`` characters survives truncation; cutting at
        ``8 * max_length`` makes a 100,000-character query as cheap to tokenize as a short one.
        """
        if not text or not text.strip():
            raise BadInput("empty text query; give some words or an image")
        return " ".join(text.split())[:8 * self.max_length]

    def check_truncation(self, texts: list[str], clipped: list[str]) -> None:
        if self.warned:
            return
        for orig, cut in zip(texts, clipped, strict=True):
            n_tokens = len(self.tokenizer(cut, truncation=False)["input_ids"])
            if n_tokens > self.max_length or len(" ".join(orig.split())) > len(cut):
                self.warned = True
                log.warning("a %d-character query was truncated to the text tower's %d tokens "
                            "(logged once)", len(orig), self.max_length)
                return

    def __call__(self, texts: list[str], device: str) -> dict[str, Any]:
        """``input_ids`` / ``attention_mask`` int64 ``(n, L)`` on ``device``, ``L <= max_length``."""
        clipped = [self.clip_text(t) for t in texts]
        self.check_truncation(texts, clipped)
        enc = self.tokenizer(clipped, padding=self.padding, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}



def pooled(output: Any) -> torch.Tensor:
    """Projected features from ``get_*_features``: a tensor (transformers 4) or the
    ``pooler_output`` of a model output (transformers 5)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output  # type: ignore[no-any-return]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero), as float32."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
