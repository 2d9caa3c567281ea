"""LLM backends against a real local HTTP server (scripted answers), the call cache, the
retriever's per-query error handling, and the tiny random-init causal LM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llm_server import Reply, ScriptedLLMServer, handmade_segments, scenes_json

from bench.errors import BackendError, BadInput, Unavailable
from bench.llm.backends import (
    AuthError,
    EndpointConfig,
    OpenAIBackend,
    TransformersBackend,
    chat_url,
    select_backend,
)
from bench.llm.cache import LLMCache, LLMClient, Pricing
from bench.llm.metadata_local import metadata_from_segments
from bench.llm.prompts import PROMPT_REVISION
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.llm_metadata import LLMMetadata
from bench.types import QueryInput

MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "find the dog"}]
SECRET = "sk-test-DO-NOT-LEAK-1234"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test starts with an empty LLM cache: scripted servers share a model name.
    monkeypatch.setenv("SCENEBENCH_CACHE", str(tmp_path / "cache"))


def endpoint(srv: ScriptedLLMServer, **kw: Any) -> EndpointConfig:
    opts: dict[str, Any] = {"base_url": srv.base_url, "model": "scripted", "max_retries": 2,
                            "backoff_s": 0.01, "timeout_s": 5.0}
    opts.update(kw)
    return EndpointConfig(**opts)


def retriever(srv: ScriptedLLMServer, **params: Any) -> LLMMetadata:
    ep = endpoint(srv).model_dump()
    ep.update(params.pop("endpoint", {}))
    cfg = RetrieverConfig(name="llm-test", family="llm-metadata",
                          params={"backend": "openai", "endpoint": ep, **params})
    r = LLMMetadata(cfg, "cpu")
    r.add_metadata([metadata_from_segments("v1", 95.0, handmade_segments("v1"))])
    return r


def test_chat_url_forms() -> None:
    assert chat_url("http://h:8000/v1") == "http://h:8000/v1/chat/completions"
    assert chat_url("http://h:11434/") == "http://h:11434/v1/chat/completions"
    assert chat_url("https://api.x/v1/chat/completions") == "https://api.x/v1/chat/completions"


def test_valid_answer_with_usage() -> None:
    answer = scenes_json(("00:02-00:06", "dog"))
    with ScriptedLLMServer([Reply(answer, usage={"prompt_tokens": 42, "completion_tokens": 7})]) as srv:
        done = OpenAIBackend(endpoint(srv)).generate(MSGS, max_new_tokens=64)
        body = srv.requests[0]["body"]
    assert done.text == answer
    assert (done.tokens_in, done.tokens_out, done.finish_reason) == (42, 7, "stop")
    assert body["model"] == "scripted" and body["max_tokens"] == 64 and body["temperature"] == 0.0
    assert body["messages"] == MSGS


def test_api_key_is_sent_but_never_stored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCENEBENCH_LLM_API_KEY", SECRET)
    with ScriptedLLMServer([Reply(scenes_json(("00:02-00:06", "dog")))]) as srv:
        backend = OpenAIBackend(endpoint(srv))
        client = LLMClient(backend, PROMPT_REVISION, cache=LLMCache(tmp_path / "llm"))
        client.chat(MSGS, max_new_tokens=32, purpose="localize")
        assert srv.requests[0]["authorization"] == f"Bearer {SECRET}"
    stored = "".join(p.read_text() for p in (tmp_path / "llm").rglob("*.json"))
    assert stored and SECRET not in stored
    for text in (json.dumps(backend.provenance()), json.dumps(client.stats()), repr(backend)):
        assert SECRET not in text


def test_401_without_key_names_the_variable() -> None:
    with ScriptedLLMServer([Reply(status=401)]) as srv, pytest.raises(AuthError) as err:
        OpenAIBackend(endpoint(srv)).generate(MSGS, max_new_tokens=8)
    assert "set SCENEBENCH_LLM_API_KEY" in str(err.value)
    assert isinstance(err.value, Unavailable)


def test_401_with_refused_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", SECRET)
    with ScriptedLLMServer([Reply(status=401)]) as srv, pytest.raises(AuthError) as err:
        OpenAIBackend(endpoint(srv, api_key_env="MY_KEY")).generate(MSGS, max_new_tokens=8)
    assert "MY_KEY was refused" in str(err.value) and SECRET not in str(err.value)


def test_500_is_retried_then_fails() -> None:
    with ScriptedLLMServer([Reply(status=500)]) as srv:
        with pytest.raises(BackendError, match=r"HTTP 500.*\(3 attempts\)") as err:
            OpenAIBackend(endpoint(srv, max_retries=2)).generate(MSGS, max_new_tokens=8)
        assert srv.n_requests == 3
    assert not err.value.unreachable  # the server is up, it fails


def test_429_and_503_then_success() -> None:
    script = [Reply(status=429, headers={"Retry-After": "0"}), Reply(status=503), Reply("[]")]
    with ScriptedLLMServer(script) as srv:
        done = OpenAIBackend(endpoint(srv, max_retries=3)).generate(MSGS, max_new_tokens=8)
        assert srv.n_requests == 3
    assert done.text == "[]"


def test_timeout() -> None:
    with ScriptedLLMServer([Reply("[]", delay_s=3.0)]) as srv, pytest.raises(BackendError, match="timed out"):
        OpenAIBackend(endpoint(srv, timeout_s=0.2, max_retries=1)).generate(MSGS, max_new_tokens=8)


def test_connection_refused() -> None:
    with ScriptedLLMServer([Reply("[]")]) as srv:
        url = srv.base_url
    with pytest.raises(BackendError, match="cannot connect") as err:
        OpenAIBackend(EndpointConfig(base_url=url, model="m", max_retries=1, backoff_s=0.01)).generate(
            MSGS, max_new_tokens=8)
    assert err.value.unreachable and err.value.exit_code == 3


def test_malformed_http_body_and_400() -> None:
    with ScriptedLLMServer([Reply(raw_body="<html>oops</html>")]) as srv, pytest.raises(
            BackendError, match="not an OpenAI chat completion"):
        OpenAIBackend(endpoint(srv)).generate(MSGS, max_new_tokens=8)
    with ScriptedLLMServer([Reply(status=400)]) as srv:
        with pytest.raises(BackendError, match="HTTP 400"):
            OpenAIBackend(endpoint(srv)).generate(MSGS, max_new_tokens=8)
        assert srv.n_requests == 1  # client errors are not retried


def test_cache_hits_and_stats(tmp_path: Path) -> None:
    answer = scenes_json(("00:02-00:06", "dog"))
    with ScriptedLLMServer([Reply(answer, usage={"prompt_tokens": 1000, "completion_tokens": 100})]) as srv:
        client = LLMClient(OpenAIBackend(endpoint(srv)), PROMPT_REVISION, cache=LLMCache(tmp_path / "c"),
                           pricing=Pricing(in_per_1k=0.5, out_per_1k=2.0))
        first = client.chat(MSGS, max_new_tokens=32, purpose="localize")
        second = client.chat(MSGS, max_new_tokens=32, purpose="localize")
        assert srv.n_requests == 1
        client.chat(MSGS, max_new_tokens=33, purpose="localize")  # another request: a miss
        assert srv.n_requests == 2
    assert (first.cached, second.cached, second.text) == (False, True, answer)
    st = client.stats()
    assert (st["cache_hits"], st["cache_misses"], st["calls"]) == (1, 2, 3)
    assert st["tokens_in"] == 3000 and st["tokens_out"] == 300
    assert st["cost_usd"] == pytest.approx(2 * (0.5 + 0.2))
    assert st["cost_usd_uncached"] == pytest.approx(3 * (0.5 + 0.2))


def test_cache_key_ignores_endpoint_url_but_not_model_or_prompt_revision() -> None:
    req = {"messages": MSGS}
    base = LLMCache.key(backend="openai", model="m", revision=None, prompt_revision="1", request=req)
    assert base == LLMCache.key(backend="openai", model="m", revision=None, prompt_revision="1",
                                request=dict(req))
    assert base != LLMCache.key(backend="openai", model="m2", revision=None, prompt_revision="1", request=req)
    assert base != LLMCache.key(backend="openai", model="m", revision=None, prompt_revision="2", request=req)


def test_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENEBENCH_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SCENEBENCH_LLM_MODEL", "env-model")
    b = select_backend("auto", EndpointConfig(), None, "cpu")
    assert isinstance(b, OpenAIBackend) and b.model == "env-model"
    assert b.url == "http://127.0.0.1:9/v1/chat/completions"


def test_nothing_configured_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCENEBENCH_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("SCENEBENCH_LLM_MODEL", raising=False)
    with pytest.raises(Unavailable, match="set SCENEBENCH_LLM_BASE_URL and SCENEBENCH_LLM_MODEL"):
        select_backend("auto", EndpointConfig(), None, "cpu")
    cfg = RetrieverConfig(name="llm-endpoint", family="llm-metadata", params={"backend": "openai"})
    with pytest.raises(Unavailable, match="set SCENEBENCH_LLM_BASE_URL and SCENEBENCH_LLM_MODEL"):
        LLMMetadata(cfg, "cpu")
    monkeypatch.setenv("SCENEBENCH_LLM_BASE_URL", "http://127.0.0.1:9")
    with pytest.raises(Unavailable, match="set SCENEBENCH_LLM_MODEL"):
        select_backend("auto", EndpointConfig(), None, "cpu")


def test_unknown_param_is_rejected() -> None:
    cfg = RetrieverConfig(name="x", family="llm-metadata", params={"top_n": 3})
    with pytest.raises(BadInput, match="params.top_n"):
        LLMMetadata(cfg, "cpu")


# -- the retriever over the server ------------------------------------------------------------

FENCED = "```json\n" + scenes_json(("00:02-00:07", "Alice takes the dog out", 0.9)) + "\n```\nDone."
SINGLE = "[{'Timestamp': '0:12-0:18', 'Description': 'Bob boils water', 'Confidence': 0.6}]"


@pytest.mark.parametrize(("answer", "window"), [
    (scenes_json(("00:02-00:07", "dog", 0.9)), (2.0, 7.0)),
    (FENCED, (2.0, 7.0)),
    (SINGLE, (12.0, 18.0)),
])
def test_search_parses_answers(answer: str, window: tuple[float, float]) -> None:
    with ScriptedLLMServer([Reply(answer)]) as srv:
        r = retriever(srv)
        (res,) = r.search_results([QueryInput(text="the dog", qid="q1")], vids=["v1"])
        assert srv.n_requests == 1
    moments = res.moments
    assert [(m.vid, m.start, m.end) for m in moments] == [("v1", *window)]
    assert moments[0].evidence.method == "llm-metadata" and moments[0].evidence.model == "scripted"
    assert res.reason is None


def test_invalid_answer_is_retried_once_with_a_stricter_reminder() -> None:
    script = [Reply("Sorry, I can't find that."), Reply(scenes_json(("00:45-00:50", "city")))]
    with ScriptedLLMServer(script) as srv:
        r = retriever(srv)
        (res,) = r.search_results([QueryInput(text="city", qid="q1")], vids=["v1"])
        assert srv.n_requests == 2
        retry_prompt = srv.requests[1]["body"]["messages"][1]["content"]
    assert "Your previous answer could not be used" in retry_prompt
    assert [(m.start, m.end) for m in res.moments] == [(45.0, 50.0)]
    assert r.records[-1].retried and r.records[-1].calls == 2
    assert res.reason is None


def test_invalid_twice_gives_no_moments_and_a_reason() -> None:
    with ScriptedLLMServer([Reply("{not json at all")]) as srv:
        r = retriever(srv)
        (res,) = r.search_results([QueryInput(text="city", qid="q1")], vids=["v1"])
        assert srv.n_requests == 2  # one retry, no more
    assert res.moments == []
    assert str(res.reason).startswith("v1: no valid scenes")


@pytest.mark.parametrize(("reply", "why"), [(Reply(status=500), "HTTP 500"),
                                            (Reply("[]", delay_s=3.0), "timed out")])
def test_backend_failure_empties_that_query_and_the_run_goes_on(reply: Reply, why: str) -> None:
    good = Reply(scenes_json(("00:45-00:50", "city")))
    calls = {"n": 0}

    def script(body: dict[str, Any]) -> Reply:
        calls["n"] += 1
        return reply if "broken" in body["messages"][1]["content"] else good

    with ScriptedLLMServer(script) as srv:
        r = retriever(srv, endpoint={"max_retries": 1, "timeout_s": 0.3})
        out = r.search_results([QueryInput(text="broken query", qid="bad"),
                                QueryInput(text="city", qid="ok")], vids=["v1"])
    assert out[0].moments == [] and [(m.start, m.end) for m in out[1].moments] == [(45.0, 50.0)]
    assert why in str(out[0].reason) and out[1].reason is None
    st = r.stats()
    assert st["errors"] == 1 and st["localizations_failed"] == 1 and st["localizations"] == 2


def test_refused_key_makes_the_configuration_unavailable() -> None:
    with ScriptedLLMServer([Reply(status=401)]) as srv:
        r = retriever(srv)
        with pytest.raises(Unavailable, match="SCENEBENCH_LLM_API_KEY"):
            r.search([QueryInput(text="dog", qid="q")], vids=["v1"])


def test_image_query_is_reported_not_raised() -> None:
    with ScriptedLLMServer([Reply("[]")]) as srv:
        r = retriever(srv)
        (res,) = r.search_results([QueryInput(image="x.png", qid="img")], vids=["v1"])
        assert srv.n_requests == 0
    assert res.moments == [] and "text query" in str(res.reason)


def test_second_run_is_served_from_the_cache() -> None:
    with ScriptedLLMServer([Reply(scenes_json(("00:02-00:07", "dog")))]) as srv:
        first = retriever(srv).search([QueryInput(text="dog", qid="q")], vids=["v1"])
        again = retriever(srv)
        second = again.search([QueryInput(text="dog", qid="q")], vids=["v1"])
        assert srv.n_requests == 1
    assert [(m.start, m.end, m.score) for m in first[0]] == [(m.start, m.end, m.score) for m in second[0]]
    assert again.stats()["cache_hit_rate"] == 1.0
    again.reset_stats()
    st = again.stats()
    assert (st["calls"], st["localizations"], st["cache_hits"]) == (0, 0, 0)


# -- tiny random-init causal LM through transformers ----------------------------------------------

def tiny_config(**params: Any) -> RetrieverConfig:
    return RetrieverConfig(name="llm-tiny-test", family="llm-metadata", model={"id": "tiny:causal-lm"},
                           params={"backend": "transformers", "max_new_tokens": 24, "cache": False,
                                   **params})


def test_tiny_causal_lm_is_garbage_and_reported_as_no_valid_scenes() -> None:
    r = LLMMetadata(tiny_config(), "cpu")
    r.add_metadata([metadata_from_segments("v1", 95.0, handmade_segments("v1"))])
    (res,) = r.search_results([QueryInput(text="the dog", qid="q1")], vids=["v1"])
    assert res.moments == []
    assert str(res.reason).startswith("v1: no valid scenes")
    assert r.records[-1].calls == 2 and r.records[-1].tokens_out > 0
    prov = r.provenance()
    assert prov["random_init"] is True and prov["llm"]["backend"] == "transformers"
    assert isinstance(r.backend, TransformersBackend)
    assert r.backend.revision is not None and r.backend.revision.startswith("sha256:")


def test_tiny_backend_counts_tokens_with_its_tokenizer() -> None:
    b = TransformersBackend(tiny_config().model, "cpu")  # type: ignore[arg-type]
    assert b.count_tokens("abc") == 3  # byte-level vocabulary, no merges
    assert b.count_tokens("<|im_end|>") == 1
    with pytest.raises(BadInput, match="text messages only"):
        b.generate([{"role": "user", "content": [{"type": "text", "text": "x"}]}], max_new_tokens=4)


def test_token_estimate_without_a_tokenizer() -> None:
    from bench.llm.backends import estimate_tokens

    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 40) == 10  # English: 4 characters per token
    assert estimate_tokens("ねこカフェ営業中") == 8  # CJK: one per character
    assert estimate_tokens("Привет") == 3  # other scripts: one per two characters


def test_hub_model_is_unavailable_offline_with_the_reason() -> None:
    from bench.retrievers import build_retriever

    with pytest.raises(Unavailable, match=r"Qwen/Qwen2.5-1.5B-Instruct@989aa79.*HF_HUB_OFFLINE=1"):
        build_retriever("llm-qwen2.5-1.5b", "cpu")
