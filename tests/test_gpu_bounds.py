"""The GPU perf script's bound arithmetic (scripts/perf/gpu_bounds.py)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest


def load() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "scripts" / "perf" / "gpu_bounds.py"
    spec = importlib.util.spec_from_file_location("gpu_bounds", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bounds"] = mod
    spec.loader.exec_module(mod)
    return mod


gb = load()


def test_encoder_bound_refuses_plans_that_measure_launch_overhead() -> None:
    with pytest.raises(ValueError, match=">= 50 timed calls"):
        gb.encoder_bound(256, [10.0] * 4)
    with pytest.raises(ValueError, match=">= 256 frames"):
        gb.encoder_bound(32, [10.0] * 60)


def test_encoder_bound_from_event_times() -> None:
    bound = gb.encoder_bound(256, [20.0] * 50)  # 50 calls of 256 frames, 20 ms each
    assert bound.frames == 12_800 and bound.seconds == pytest.approx(1.0)
    assert bound.frames_per_s == pytest.approx(12_800.0)
    assert math.isnan(gb.Bound(10, 0.0).frames_per_s)


def test_calls_fit_the_budget_within_the_floor_and_ceiling() -> None:
    assert gb.calls_for_budget(10.0, 0.1) == 100
    assert gb.calls_for_budget(1.0, 0.1) == 50  # never below the floor
    assert gb.calls_for_budget(1000.0, 0.001) == 400
    assert gb.calls_for_budget(10.0, 0.0) == 50


def test_target_share_uses_the_lower_bound() -> None:
    assert gb.target_share(900.0, 1000.0, 5000.0) == pytest.approx(0.9)
    assert gb.target_share(900.0, 5000.0, 1000.0) == pytest.approx(0.9)
    assert gb.limiting_bound(5000.0, 1000.0) == "decode"
    assert gb.limiting_bound(1000.0, 5000.0) == "encoder"
    assert math.isnan(gb.target_share(1.0, 0.0, 10.0))


def test_copy_arithmetic() -> None:
    # A 256-frame batch of 224 px frames: float32 pixels are four times the uint8 frames.
    assert gb.bytes_per_batch(256, 224, 224, 4) == 4 * gb.bytes_per_batch(256, 224, 224, 1) == 154_140_672
    assert gb.copy_share(5.0, 20.0) == pytest.approx(0.25)
    assert math.isnan(gb.copy_share(1.0, 0.0))
