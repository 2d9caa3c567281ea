"""Feature store: a SQLite catalog (WAL) with per-video arrays and JSON, written atomically,
and the shared resumable indexing loop."""

from bench.store.artefacts import Written, canonical_json
from bench.store.catalog import Extractor, FeatureStore, Status
from bench.store.indexing import index_videos, index_videos_json
from bench.store.location import Location, sha256_file

__all__ = [
    "Extractor",
    "Location",
    "FeatureStore",
    "Status",
    "Written",
    "canonical_json",
    "index_videos",
    "index_videos_json",
    "sha256_file",
]
