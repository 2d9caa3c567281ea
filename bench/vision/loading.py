"""Loading CLIP-style models the real way (hub id + pinned revision, tiny recipe or local
directory): precision, ``from_pretrained`` keywords, cache-key names, the image processor config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.errors import BadInput, Unavailable
from bench.modelref import ModelRef, ResolvedModel, hub_offline, hub_unavailable_reason, resolve

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def torch_dtype(name: str, device: str) -> torch.dtype:
    """``auto`` -> float16 on CUDA, float32 on CPU (CPU half matmuls are slow and lossy)."""
    import torch

    if name == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in table:
        raise BadInput(f"dtype must be auto, float32, float16 or bfloat16, got {name!r}")
    if device == "cpu" and name == "float16":
        raise BadInput("dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return table[name]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_kwargs(resolved: ResolvedModel) -> dict[str, Any]:
    """``from_pretrained`` keywords: the pinned revision for hub ids, local files only when
    the hub is off (or out of reach) or for local directories."""
    hub = resolved.source == "hub"
    kwargs: dict[str, Any] = {"local_files_only": not hub or hub_offline()}
    if hub and resolved.revision:
        kwargs["revision"] = resolved.revision
    return kwargs


def weights_tag(resolved: ResolvedModel) -> str:
    """What pins the weights in a cache key: the hub revision, or the tiny recipe's digest
    directory, or the local directory's weights checksum (never a machine path)."""
    if resolved.source == "tiny":
        return Path(resolved.location).name
    if resolved.source == "hub":
        return resolved.revision or "main"
    return resolved.provenance()["checksum"] or "unknown"


def model_key(resolved: ResolvedModel) -> str:
    """The model's name in a cache key: the hub, tiny or package id; ``"local"`` for a local
    directory (its path is machine-specific; :func:`weights_tag` pins its content)."""
    return "local" if resolved.source == "local" else resolved.ref_id


def resolve_or_unavailable(ref: ModelRef) -> ResolvedModel:
    try:
        return resolve(ref)
    except Unavailable:
        raise
    except BadInput as exc:
        raise Unavailable(f"cannot build {ref.id}: {exc}") from exc


def load_pretrained(loader: Callable[..., T], ref: ModelRef, resolved: ResolvedModel, **extra: Any) -> T:
    """``loader(location, **load_kwargs, **extra)``; any failure -> :class:`Unavailable`."""
    try:
        return loader(resolved.location, **load_kwargs(resolved), **extra)
    except Exception as exc:  # hub, file and config errors come in many types
        raise Unavailable(hub_unavailable_reason(ref, exc)) from exc


def image_processor_config(ref: ModelRef, resolved: ResolvedModel) -> dict[str, Any]:
    """The raw ``preprocessor_config.json`` of a model (no processor object is built)."""
    from transformers.image_processing_utils import ImageProcessingMixin

    def get(location: str, **kwargs: Any) -> dict[str, Any]:
        return dict(ImageProcessingMixin.get_image_processor_dict(location, **kwargs)[0])

    return load_pretrained(get, ref, resolved)

