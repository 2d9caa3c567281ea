"""Vector search shared by the frame, clip and dense-text retrievers (faiss; numpy fallback)."""

from bench.index.vector import FLAT_MAX, VectorIndex, exact_topk, normalize, recall_at_k

__all__ = ["FLAT_MAX", "VectorIndex", "exact_topk", "normalize", "recall_at_k"]
