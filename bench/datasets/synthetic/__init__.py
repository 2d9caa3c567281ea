"""The embedded scene-suite query sets (``synthetic-v1``, ``synthetic-mini``), rendered from a YAML spec.

Photographs shipped by scikit-image/scikit-learn get Ken Burns motion, Noto CJK telops and
espeak-ng narration, and are encoded to H.264/AAC mp4, so every scene interval is exact ground truth.
The entry points live in :mod:`bench.datasets.synthetic.builder`.
"""
