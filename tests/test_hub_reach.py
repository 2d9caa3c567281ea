"""Hub reachability: probed once per process, on the first hub model; after a failure every
hub model comes from the local cache or is unavailable at once, with one clear reason."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from huggingface_hub import constants

from bench import modelref
from bench.errors import Unavailable
from bench.eval.runner import run_one
from bench.modelref import (
    ModelRef,
    forget_hub_check,
    hub_endpoint,
    hub_offline,
    hub_unavailable_reason,
    hub_unreachable,
    probe_hub,
    resolve,
)
from bench.retrievers import build_retriever
from bench.retrievers.base import RetrieverConfig
from bench.text.asr import BUNDLED_WHISPER
from bench.vision.loading import load_kwargs

# Ids no hub cache holds, so "not in the local cache" is certain on every machine.
MISSING_TEXT = ModelRef(id="scenebench-tests/no-such-encoder", revision="0" * 40)
MISSING_CLIP = ModelRef(id="scenebench-tests/no-such-clip", revision="1" * 40)
REASON = "the model hub cannot be reached"


class Probe:
    """A stand-in for the one HEAD request: records each call, answers ``reason``."""

    def __init__(self, reason: str | None) -> None:
        self.reason = reason
        self.calls: list[tuple[str, float]] = []

    def __call__(self, endpoint: str, timeout_s: float) -> str | None:
        self.calls.append((endpoint, timeout_s))
        return self.reason


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every attempt to open a network connection (each one also fails)."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """``HF_HUB_OFFLINE`` unset (conftest sets it) and a fresh check; the hub client's offline
    constant is restored afterwards."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    forget_hub_check()
    yield monkeypatch
    forget_hub_check()


def use_probe(monkeypatch: pytest.MonkeyPatch, reason: str | None) -> Probe:
    probe = Probe(reason)
    monkeypatch.setattr(modelref, "probe_hub", probe)
    return probe


def test_one_failed_probe_turns_the_hub_off_for_the_process(hub_env, connects) -> None:
    probe = use_probe(hub_env, "https://huggingface.co: ConnectError: no route")
    first = resolve(MISSING_CLIP)
    resolve(MISSING_TEXT)
    assert probe.calls == [("https://huggingface.co", modelref.HUB_PROBE_TIMEOUT_S)]
    assert hub_offline() and hub_unreachable() == "https://huggingface.co: ConnectError: no route"
    assert constants.HF_HUB_OFFLINE is True  # what transformers and the hub client ask
    assert load_kwargs(first)["local_files_only"] is True
    assert len(probe.calls) == 1 and connects == []
    forget_hub_check()  # checking again puts the hub client back as it was
    assert constants.HF_HUB_OFFLINE is False


def test_later_configurations_are_unavailable_at_once_with_the_reason(
        hub_env, connects, synthetic_mini) -> None:
    probe = use_probe(hub_env, "https://huggingface.co: ConnectError: no route")
    dense = RetrieverConfig(name="dense-missing", family="dense-text", model=MISSING_TEXT,
                            params={"query_prefix": "query: ", "passage_prefix": "passage: "})
    with pytest.raises(Unavailable) as err:
        build_retriever(dense, "cpu")
    assert str(err.value) == (
        "dense-missing: cannot load scenebench-tests/no-such-encoder@" + "0" * 40 + ": the model "
        "hub cannot be reached (https://huggingface.co: ConnectError: no route); models not in "
        "the local cache are unavailable; set HF_HUB_OFFLINE=1 to skip the check")

    clip = RetrieverConfig(name="clip-missing", family="clip-frames", model=MISSING_CLIP)
    results = run_one(clip, synthetic_mini, ("grounding",), device="cpu", progress=False)
    assert [(r.status, r.mode) for r in results] == [("unavailable", "grounding")]
    reason = results[0].reason or ""
    assert reason.startswith(f"cannot load scenebench-tests/no-such-clip@{'1' * 40}: {REASON} (")
    assert reason.endswith("set HF_HUB_OFFLINE=1 to skip the check") and "\n" not in reason
    assert len(probe.calls) == 1 and connects == []


def test_hf_hub_offline_skips_the_probe(hub_env, connects) -> None:
    probe = use_probe(hub_env, "should not be asked")
    hub_env.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve(MISSING_CLIP)
    assert probe.calls == [] and hub_offline() and hub_unreachable() is None
    assert load_kwargs(resolved)["local_files_only"] is True
    reason = hub_unavailable_reason(MISSING_CLIP, OSError("not in the cache"))
    assert "(HF_HUB_OFFLINE=1 and not in the local cache)" in reason and REASON not in reason
    assert connects == []


def test_a_reachable_hub_is_probed_once_and_left_online(hub_env) -> None:
    probe = use_probe(hub_env, None)
    hub_env.setenv("HF_ENDPOINT", "https://hub.example.org/")
    resolved = resolve(MISSING_CLIP)
    resolve(MISSING_TEXT)
    assert probe.calls == [("https://hub.example.org", modelref.HUB_PROBE_TIMEOUT_S)]
    assert not hub_offline() and constants.HF_HUB_OFFLINE is False
    assert load_kwargs(resolved)["local_files_only"] is False


def test_models_that_are_not_on_the_hub_never_probe(hub_env) -> None:
    probe = use_probe(hub_env, "unreachable")
    packaged = ModelRef(id=BUNDLED_WHISPER)
    assert resolve(packaged).source == "package"
    assert probe.calls == []
    # Even after the hub was found unreachable, a packaged model's failure is its own.
    resolve(MISSING_CLIP)
    reason = hub_unavailable_reason(packaged, ValueError("bad weights"))
    assert reason == f"cannot load {BUNDLED_WHISPER}@main: bad weights"


def _answering(status: int | None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.method == "HEAD" and str(request.url) == "https://hub.example.org"
        if status is None:
            raise httpx.ConnectError("Name or service not known", request=request)
        return httpx.Response(status)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(("status", "unreachable"), [
    (None, "https://hub.example.org: ConnectError: Name or service not known"),
    (407, "https://hub.example.org answered HTTP 407"),  # a proxy that wants credentials
    (403, "https://hub.example.org answered HTTP 403"),  # a firewall's refusal page
    (502, "https://hub.example.org answered HTTP 502"),
    (200, None),
    (404, None),  # the hub (or a mirror) answered, just not at its root
])
def test_probe_reads_what_came_back(status: int | None, unreachable: str | None) -> None:
    assert probe_hub("https://hub.example.org", 1.0, transport=_answering(status)) == unreachable


def test_endpoint_is_the_hub_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub_endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example/")
    assert hub_endpoint() == "https://mirror.example"
