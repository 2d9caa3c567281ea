"""Device checks, GPU provenance and the device/precision fields of cache keys, on a machine
without a GPU: missing CUDA, cuDNN and faiss-gpu are simulated with stand-in modules."""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

import pytest

from bench import devices, timing
from bench.text import asr as asr_mod
from bench.text import extract
from bench.text.asr import AsrConfig, Transcriber
from bench.text.captions import CaptionConfig, Captioner


def fake_ct2(cuda_devices: int, cuda_types: tuple[str, ...] = ("float16", "int8", "float32")) -> Any:
    mod = types.ModuleType("ctranslate2")
    mod.get_cuda_device_count = lambda: cuda_devices  # type: ignore[attr-defined]
    mod.get_supported_compute_types = lambda device: set(cuda_types)  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def ct2_with_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """CTranslate2 that sees one GPU, and cuDNN that loads."""
    monkeypatch.setitem(sys.modules, "ctranslate2", fake_ct2(1))
    monkeypatch.setattr(devices, "load_first", lambda names: names[0])


def test_device_key_is_empty_for_the_cpu_at_its_default_precision() -> None:
    assert devices.device_key("cpu", "int8", "int8") == {}
    assert devices.device_key("cpu", "float32", "int8") == {"device": "cpu", "precision": "float32"}
    assert devices.device_key("cuda", "float32", "float32") == {"device": "cuda", "precision": "float32"}


def test_ctranslate2_problems_name_the_missing_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ctranslate2", fake_ct2(0))
    assert "no CUDA device" in (devices.ctranslate2_cuda_problem() or "")
    monkeypatch.setitem(sys.modules, "ctranslate2", fake_ct2(1, ("float32",)))
    assert "float16" in (devices.ctranslate2_cuda_problem("float16") or "")
    monkeypatch.setitem(sys.modules, "ctranslate2", fake_ct2(1))
    monkeypatch.setattr(devices, "load_first", lambda names: None)
    assert "cuDNN" in (devices.ctranslate2_cuda_problem() or "")
    monkeypatch.setattr(devices, "load_first", lambda names: names[0])
    assert devices.ctranslate2_cuda_problem() is None


def test_load_first_returns_none_when_nothing_loads() -> None:
    assert devices.load_first(("libno-such-library-here.so.1",)) is None


def test_asr_without_cudnn_falls_back_to_the_cpu_with_the_reason(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "ctranslate2", fake_ct2(1))
    monkeypatch.setattr(devices, "load_first", lambda names: None)
    with caplog.at_level(logging.WARNING, logger="bench"):
        tr = Transcriber(AsrConfig(), device="cuda")
    assert (tr.device, tr.compute_type) == ("cpu", "int8")
    assert "cuDNN is not found" in caplog.text and "running on the CPU" in caplog.text
    # What runs on the CPU shares the CPU's cache entries.
    assert extract._speech_extractor(tr).key == extract._speech_extractor(Transcriber(AsrConfig())).key


def test_asr_auto_takes_the_gpu_only_when_ctranslate2_can_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ctranslate2", fake_ct2(1))
    monkeypatch.setattr(devices, "load_first", lambda names: None)
    assert asr_mod.resolve_asr_device("auto") == "cpu"
    monkeypatch.setattr(devices, "load_first", lambda names: names[0])
    assert asr_mod.resolve_asr_device("auto") == "cuda"


def test_speech_keys_hold_device_and_precision_apart(ct2_with_gpu: None) -> None:
    cpu = Transcriber(AsrConfig(), device="cpu")
    gpu = Transcriber(AsrConfig(), device="cuda")
    assert (gpu.device, gpu.compute_type) == ("cuda", "float16")
    cpu_ex, gpu_ex = extract._speech_extractor(cpu), extract._speech_extractor(gpu)
    assert "device" not in cpu_ex.params and "precision" not in cpu_ex.params
    assert cpu_ex.params["compute_type"] is None  # as stored before devices entered keys
    assert (gpu_ex.params["device"], gpu_ex.params["precision"]) == ("cuda", "float16")
    assert cpu_ex.key != gpu_ex.key
    # int8 asked for explicitly: the same kernels' name, another device, another key.
    gpu_int8 = extract._speech_extractor(Transcriber(AsrConfig(compute_type="int8"), device="cuda"))
    cpu_int8 = extract._speech_extractor(Transcriber(AsrConfig(compute_type="int8"), device="cpu"))
    assert gpu_int8.key != cpu_int8.key and "device" not in cpu_int8.params


def test_caption_keys_hold_device_and_precision_apart() -> None:
    cfg = CaptionConfig(model={"id": "tiny:caption"})
    cpu, gpu = Captioner(cfg, device="cpu"), Captioner(cfg, device="cuda")
    cpu_ex, gpu_ex = extract._caption_extractor(cpu), extract._caption_extractor(gpu)
    assert "device" not in cpu_ex.params
    assert (gpu_ex.params["device"], gpu_ex.params["precision"]) == ("cuda", "float16")
    assert gpu.provenance()["dtype"] == "float16" and cpu.provenance()["dtype"] == "float32"


def test_faiss_gpu_problem_on_a_cpu_build() -> None:
    pytest.importorskip("faiss")
    problem = devices.faiss_gpu_problem()
    assert problem is not None and ("GPU support" in problem or "no GPU" in problem)


def test_faiss_gpu_problem_without_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("faiss")
    mod.StandardGpuResources = object  # type: ignore[attr-defined]
    mod.get_num_gpus = lambda: 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "faiss", mod)
    assert devices.faiss_gpu_problem() == "faiss sees no GPU"
    mod.get_num_gpus = lambda: 1  # type: ignore[attr-defined]
    assert devices.faiss_gpu_problem() is None


def test_usable_device_keeps_the_cpu_and_a_working_gpu() -> None:
    assert devices.usable_device("cpu", "anything", "x") == "cpu"
    assert devices.usable_device("cuda", None, "x") == "cuda"
    assert devices.usable_device("cuda", "no driver", "x") == "cpu"


def test_gpu_provenance_is_present_and_none_on_the_cpu() -> None:
    info = devices.gpu_info().as_dict()
    assert set(info) == {"gpu_name", "gpu_count", "gpu_memory_bytes", "compute_capability",
                         "driver_version", "cuda_runtime", "cudnn_version"}
    assert all(v is None for v in info.values())
    assert devices.peak_cuda_bytes() is None


def test_timing_records_no_cuda_peak_on_the_cpu() -> None:
    with timing.recording(timing.TimingRecorder()) as rec, timing.stage("encode", items=3):
        pass
    doc = rec.as_dict()
    assert doc["peak_cuda_bytes"] is None and doc["stages"]["encode"]["items"] == 3.0


def test_timing_takes_the_cuda_peak_when_cuda_is_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    resets: list[int] = []
    monkeypatch.setattr(devices, "cuda_in_use", lambda: True)
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(
        reset_peak_memory_stats=lambda: resets.append(1), max_memory_allocated=lambda: 123_456,
        is_available=lambda: False, synchronize=lambda: None))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    with timing.recording(timing.TimingRecorder()) as rec:
        pass
    assert resets == [1] and rec.peak_cuda_bytes == 123_456


def test_result_environment_carries_the_gpu_fields_as_none_on_the_cpu() -> None:
    from bench.eval.runner import environment

    gpu = environment()["gpu"]
    assert gpu["gpu_name"] is None and gpu["driver_version"] is None and gpu["cuda_runtime"] is None


def test_auto_index_kind_per_device() -> None:
    from bench.index.vector import FLAT_MAX, GPU_FLAT_MAX, auto_kind

    assert auto_kind(FLAT_MAX, "faiss", on_gpu=False) == "flat"
    assert auto_kind(FLAT_MAX + 1, "faiss", on_gpu=False) == "pq"
    # faiss-gpu has no PQ fast-scan: exact on the GPU far beyond the CPU's limit, then IVF.
    assert auto_kind(FLAT_MAX + 1, "faiss", on_gpu=True) == "flat"
    assert auto_kind(GPU_FLAT_MAX + 1, "faiss", on_gpu=True) == "ivf"
    assert auto_kind(10**9, "torch", on_gpu=True) == auto_kind(10**9, "numpy", on_gpu=False) == "flat"


def test_ivf_calibration_stays_within_the_gpu_nprobe_limit() -> None:
    from bench.index.vector import GPU_MAX_NPROBE, nprobe_steps

    assert nprobe_steps(100, on_gpu=False) == [1, 2, 4, 8, 16, 32, 64, 100]
    assert nprobe_steps(100, on_gpu=True) == nprobe_steps(100, on_gpu=False)
    cpu, gpu = nprobe_steps(8192, on_gpu=False), nprobe_steps(8192, on_gpu=True)
    assert cpu[-2:] == [4096, 8192]
    assert max(gpu) == GPU_MAX_NPROBE == 2048 and gpu[-1] == 2048 and gpu == sorted(set(gpu))


def test_faiss_gpu_resources_are_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.index import vector

    made: list[object] = []

    class Resources:
        def __init__(self) -> None:
            made.append(self)

    mod = types.ModuleType("faiss")
    mod.StandardGpuResources = Resources  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "faiss", mod)
    monkeypatch.setattr(vector, "_GPU_RESOURCES", [])
    assert vector.gpu_resources() is vector.gpu_resources() and len(made) == 1


def test_cuda_index_without_faiss_gpu_or_torch_cuda_searches_on_the_cpu(
        caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np

    from bench.index.vector import VectorIndex

    with caplog.at_level(logging.INFO, logger="bench"):
        idx = VectorIndex(4, device="cuda")
    assert "searching on the CPU" in caplog.text and idx.backend in ("faiss", "numpy")
    idx.add(np.eye(4, dtype=np.float32), np.arange(4))
    _, ids = idx.search(np.eye(4, dtype=np.float32)[1], 1)
    assert ids.tolist() == [[1]]
