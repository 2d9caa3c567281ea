"""Writing one artefact file of the feature store, atomically and without the catalog: the
driver's store and the Ray engine's workers write the same way (to the store's
:class:`~bench.store.location.Location`), and only the driver registers.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np

from bench.errors import BadInput
from bench.store.location import Location

Kind = Literal["npz", "json"]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces, NaN refused) used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Written:
    """An artefact file renamed into place under a store root, not yet in the catalog:
    ``relpath`` (posix, relative to the root), its size, sha256, per-array shape and dtype
    (``npz``; None for ``json``) and the canonical JSON of its ``meta``."""

    kind: Kind
    relpath: str
    nbytes: int
    sha256: str
    arrays: dict[str, dict[str, Any]] | None
    meta_json: str


def write_npz(fh: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """An uncompressed ``.npz`` with fixed zip timestamps, so equal arrays give equal bytes
    (``np.savez`` stamps the current time into every member)."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def array_spec(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    return {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()}


def checked_arrays(ex_key: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``arrays`` as numpy arrays, BadInput for none, an object dtype or a bad name."""
    if not arrays:
        raise BadInput(f"extractor {ex_key}: save() needs at least one array")
    clean: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise BadInput(f"extractor {ex_key}: array {name!r} has dtype object; store numbers "
                           "or strings, or use save_json")
        if not name or "/" in name:
            raise BadInput(f"extractor {ex_key}: array name {name!r} must be non-empty, without '/'")
        clean[str(name)] = arr
    return clean


def meta_json(ex_key: str, meta: Mapping[str, Any] | None) -> str:
    try:
        return canonical_json(dict(meta or {}))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"extractor {ex_key}: meta must be JSON-able ({exc})") from None


def artefact_dir(video_id: str, ex_key: str) -> str:
    """``features/<extractor key>``, where the artefacts of ``video_id`` go (relative)."""
    if not NAME_RE.match(video_id):
        raise BadInput(f"video id {video_id!r} is not an id made by FeatureStore.video_id")
    return f"features/{ex_key}"


def write_artefact(where: Location, video_id: str, ex_key: str, kind: Kind, out: Any,
                   meta: Mapping[str, Any] | None) -> Written:
    """Write ``out`` (named arrays for ``npz``, a JSON-able object for ``json``) as the
    artefact of (``video_id``, extractor ``ex_key``) at ``where``; the catalog is untouched.
    BadInput for arrays or objects the store cannot hold."""
    meta_text = meta_json(ex_key, meta)
    spec: dict[str, dict[str, Any]] | None = None
    if kind == "npz":
        clean = checked_arrays(ex_key, out)
        spec = array_spec(clean)

        def write(fh: BinaryIO) -> None:
            write_npz(fh, clean)
    else:
        try:
            data = json.dumps(out, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise BadInput(f"extractor {ex_key}: object is not JSON-able ({exc})") from None

        def write(fh: BinaryIO) -> None:
            fh.write(data)

    relpath, nbytes, digest = where.write(artefact_dir(video_id, ex_key), video_id, kind, write)
    return Written(kind, relpath, nbytes, digest, spec, meta_text)
