"""Tagging videos into a taxonomy (the second task): zero-shot scores per family from the features
the retrievers keep (:mod:`bench.tagging.zeroshot`), linear probes on stored embeddings
(:mod:`bench.tagging.probe`) and their metrics (:mod:`bench.tagging.metrics`)."""
