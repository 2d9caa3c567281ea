"""Retriever families (lazily imported) and the configurations in ``models/*.yaml``.

Adding a configuration is one YAML file in ``models/``; adding a family is one module and
one ``FAMILIES.register`` line here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BadInput, Unavailable
from bench.paths import repo_root
from bench.registry import Registry
from bench.retrievers.base import Retriever, RetrieverConfig

if TYPE_CHECKING:
    from bench.workspace import Workspace

Factory = Callable[[RetrieverConfig, str], Retriever]

FAMILIES: Registry[Any] = Registry("retriever family")
FAMILIES.register("clip-frames", "bench.retrievers.clip_frames:ClipFrames")
FAMILIES.register("xclip-clips", "bench.retrievers.xclip_clips:XClipClips")
FAMILIES.register("bm25-text", "bench.retrievers.bm25_text:BM25Text")
FAMILIES.register("dense-text", "bench.retrievers.dense_text:DenseText")
FAMILIES.register("llm-metadata", "bench.retrievers.llm_metadata:LLMMetadata")
FAMILIES.register("fusion", "bench.retrievers.fusion:Fusion")
FAMILIES.register("chance", "bench.retrievers.chance:Chance")
FAMILIES.register("impression", "bench.retrievers.impression:Impression")

TINY_TAG = "tiny"
"""Tag of configurations that run random-init models: they test the code, their numbers mean
nothing, so a plain ``run`` leaves them out."""


def models_dir() -> Path:
    return repo_root() / "models"


def load_configs(directory: Path | None = None) -> dict[str, RetrieverConfig]:
    """Every ``*.yaml`` directly in ``models/`` (not ``models/tiny/``), by configuration name."""
    directory = directory or models_dir()
    configs: dict[str, RetrieverConfig] = {}
    for path in sorted(directory.glob("*.yaml")):
        cfg = RetrieverConfig.from_yaml(path)
        if cfg.name in configs:
            raise BadInput(f"{path}: configuration name {cfg.name!r} is used twice")
        if cfg.family not in FAMILIES:
            raise BadInput(f"{path}: field 'family': unknown family {cfg.family!r} "
                           f"(known: {', '.join(FAMILIES.names())})")
        configs[cfg.name] = cfg
    return configs


def get_config(spec: str) -> RetrieverConfig:
    """A configuration name from ``models/`` or a path to a YAML file."""
    path = Path(spec)
    if path.suffix in {".yaml", ".yml"} and path.is_file():
        return RetrieverConfig.from_yaml(path)
    configs = load_configs()
    if spec not in configs:
        raise BadInput(f"unknown retriever {spec!r}; known: {', '.join(sorted(configs))}")
    return configs[spec]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is an error."""
    if device not in {"auto", "cpu", "cuda"}:
        raise BadInput(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if device == "cuda" and not has_cuda:
        raise BadInput("--device cuda: no CUDA device is visible to torch; use --device cpu")
    return "cuda" if has_cuda else "cpu"


def build_retriever(config: RetrieverConfig | str, device: str = "auto", *,
                    workspace: Workspace | None = None) -> Retriever:
    """Instantiate a configuration. Missing weights/packages raise :class:`Unavailable`.

    ``workspace`` goes to families that take one (fusion gets its members from it).
    """
    cfg = get_config(config) if isinstance(config, str) else config
    cls = FAMILIES.get(cfg.family)
    kwargs: dict[str, Any] = {}
    if workspace is not None and "workspace" in inspect.signature(cls).parameters:
        kwargs["workspace"] = workspace
    try:
        return cls(cfg, resolve_device(device), **kwargs)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise Unavailable(f"{cfg.name}: missing package {exc.name or exc}; "
                          f"install the matching extra (see README)") from exc
