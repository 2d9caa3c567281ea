"""Accelerators: whether each backend can use CUDA (checked before use, with the reason when
not), what a GPU run records (model, driver, CUDA and cuDNN versions, peak memory), and the
device and precision fields of feature cache keys.

Nothing here imports torch, CTranslate2 or faiss at module import; each check imports its own.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from bench import subproc

log = logging.getLogger("bench")

CUDNN_LIBRARIES = ("libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn.so.9", "libcudnn_ops_infer.so.8",
                   "libcudnn.so.8")
"""cuDNN shared libraries CTranslate2's CUDA build loads (9.x for CTranslate2 >= 4.5, 8.x
before). CTranslate2 loads them lazily, on the first convolution, and aborts the process
when none is found; so their presence is checked before a model goes to the GPU."""


def device_key(device: str, precision: str, cpu_precision: str) -> dict[str, str]:
    """The fields a feature cache key adds for where and at what precision it was computed.

    Empty for the CPU at its default precision, so keys made before these fields existed (all
    on the CPU at that precision) keep their values and their stores stay valid. Anything
    else names the device and the precision actually used: float32 on a GPU (TF32 matrix
    units) or int8 CTranslate2 kernels on CUDA give other numbers than the CPU's."""
    if device == "cpu" and precision == cpu_precision:
        return {}
    return {"device": device, "precision": precision}


# -- capability checks: None when usable, else the reason -------------------------------------


def torch_cuda_problem() -> str | None:
    """Why torch cannot run on CUDA here, or None when it can."""
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        return f"torch is not installed ({exc})"
    if not torch.cuda.is_available():
        build = torch.version.cuda
        return ("torch sees no CUDA device" if build else
                f"torch {torch.__version__} was built without CUDA")
    return None


def ctranslate2_cuda_problem(compute_type: str = "float16") -> str | None:
    """Why CTranslate2 (faster-whisper) cannot run ``compute_type`` on CUDA here, or None.

    Checks the build and the device count, the compute type, and that cuDNN loads: a CUDA
    build without cuDNN aborts the whole process at the first convolution, which no
    ``except`` can catch."""
    try:
        ct2 = importlib.import_module("ctranslate2")
    except ImportError as exc:
        return f"ctranslate2 is not installed ({exc})"
    try:
        if ct2.get_cuda_device_count() < 1:
            return "CTranslate2 sees no CUDA device (a CPU-only build, or no driver)"
        supported = set(ct2.get_supported_compute_types("cuda"))
    except Exception as exc:  # a broken CUDA runtime raises from inside the extension
        return f"CTranslate2 cannot query CUDA ({type(exc).__name__}: {exc})"
    if compute_type not in supported and compute_type not in ("auto", "default"):
        return f"CTranslate2 on this GPU does not support compute_type {compute_type!r} " \
               f"(supported: {', '.join(sorted(supported))})"
    if load_first(CUDNN_LIBRARIES) is None:
        return f"cuDNN is not found (none of {', '.join(CUDNN_LIBRARIES)} loads)"
    return None


def load_first(names: tuple[str, ...]) -> str | None:
    """The first shared library of ``names`` that loads, or None."""
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name
    return None


def faiss_gpu_problem() -> str | None:
    """Why faiss cannot search on the GPU here, or None when it can."""
    try:
        faiss = importlib.import_module("faiss")
    except ImportError as exc:
        return f"faiss is not installed ({exc})"
    if not hasattr(faiss, "StandardGpuResources"):
        return "the installed faiss has no GPU support (faiss-cpu)"
    try:
        if faiss.get_num_gpus() < 1:
            return "faiss sees no GPU"
    except Exception as exc:
        return f"faiss cannot query GPUs ({type(exc).__name__}: {exc})"
    return None


def usable_device(device: str, problem: str | None, what: str) -> str:
    """``device``, or ``cpu`` with one logged warning saying why when ``device`` is ``cuda``
    and ``problem`` is a reason it cannot be used by ``what``."""
    if device == "cuda" and problem is not None:
        log.warning("%s: CUDA is not usable (%s); running on the CPU", what, problem)
        return "cpu"
    return device


# -- what a run records ----------------------------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    """The GPU a run used, for result provenance; every field None on a CPU run."""

    gpu_name: str | None = None
    gpu_count: int | None = None
    gpu_memory_bytes: int | None = None
    compute_capability: str | None = None
    driver_version: str | None = None
    cuda_runtime: str | None = None
    """The CUDA version torch was built against (``torch.version.cuda``)."""
    cudnn_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gpu_info() -> GpuInfo:
    """What torch (and ``nvidia-smi``, for the driver) say about GPU 0; all None without CUDA.

    Imports torch only if it is loaded already: a CPU-only run never pays for it."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return GpuInfo()
    props = torch.cuda.get_device_properties(0)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return GpuInfo(gpu_name=str(props.name), gpu_count=int(torch.cuda.device_count()),
                   gpu_memory_bytes=int(props.total_memory),
                   compute_capability=f"{props.major}.{props.minor}", driver_version=driver_version(),
                   cuda_runtime=torch.version.cuda, cudnn_version=int(cudnn) if cudnn else None)


def driver_version() -> str | None:
    """The NVIDIA driver's version (``nvidia-smi``), or None when it cannot be asked."""
    try:
        out = subproc.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.stdout.strip().splitlines()[:1]
    return first[0].strip() if out.returncode == 0 and first else None


def cuda_in_use() -> bool:
    """True when torch is loaded and has initialized CUDA in this process."""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())


def reset_peak_cuda_bytes() -> None:
    """Start a new peak-memory window (a no-op when CUDA is not in use)."""
    if cuda_in_use():
        sys.modules["torch"].cuda.reset_peak_memory_stats()


def peak_cuda_bytes() -> int | None:
    """The most bytes torch held on the GPU since the last reset; None when CUDA is not in use."""
    if not cuda_in_use():
        return None
    return int(sys.modules["torch"].cuda.max_memory_allocated())
