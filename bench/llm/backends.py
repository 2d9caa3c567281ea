"""Chat backends: local ``transformers`` causal LMs and any OpenAI-compatible HTTP endpoint.

Both answer greedily. The endpoint (vLLM, llama.cpp server, Ollama, hosted APIs) comes from
the configuration or ``SCENEBENCH_LLM_BASE_URL`` / ``SCENEBENCH_LLM_MODEL``; its API key is
read from an environment variable at call time and never logged, stored or hashed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from bench.errors import BackendError, BadInput, Unavailable
from bench.modelref import ModelRef, hub_offline, hub_unavailable_reason, resolve, weights_checksum

if TYPE_CHECKING:
    from bench.llm.prompts import Message

log = logging.getLogger("bench")

ENV_BASE_URL = "SCENEBENCH_LLM_BASE_URL"
ENV_MODEL = "SCENEBENCH_LLM_MODEL"
ENV_API_KEY = "SCENEBENCH_LLM_API_KEY"
NOT_CONFIGURED = (f"set {ENV_BASE_URL} and {ENV_MODEL} (an OpenAI-compatible endpoint: vLLM, "
                  f"llama.cpp server, Ollama or a hosted API; {ENV_API_KEY} if it needs a key), "
                  "or configure a local model")
CHARS_PER_TOKEN = 4.0
"""ASCII characters per token in the estimate used when the backend has no tokenizer here."""


class AuthError(Unavailable):
    """The endpoint refused the credentials (HTTP 401/403); the message names the variable."""


@dataclass(frozen=True)
class Completion:
    """A model's answer. Tokens as the backend counted them (estimated when it did not say)."""

    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float
    finish_reason: str | None = None
    cached: bool = False


@runtime_checkable
class LLMBackend(Protocol):
    """What the ``llm-metadata`` family needs from a chat model."""

    kind: str
    """``openai`` or ``transformers``: part of every cache key."""
    model: str
    revision: str | None
    context_tokens: int
    """Prompt plus answer must fit in this many tokens."""
    random_init: bool

    def generate(self, messages: list[Message], *, max_new_tokens: int) -> Completion: ...

    def count_tokens(self, text: str) -> int: ...

    def provenance(self) -> dict[str, Any]: ...


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` without a tokenizer: ASCII characters / 4 (the usual rule for English
    with BPE vocabularies), one per CJK character, one per two other characters (Cyrillic,
    accented Latin). Errs high on non-English text, so a context budget is not overrun."""
    ascii_n = sum(1 for ch in text if ch < "\x80")
    cjk_n = sum(1 for ch in text if "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af"
                or "\uf900" <= ch <= "\ufaff" or "\U00020000" <= ch <= "\U0003134f")
    other_n = len(text) - ascii_n - cjk_n
    return int(math.ceil(ascii_n / CHARS_PER_TOKEN + cjk_n + other_n / 2.0))


def _message_text(messages: list[Message]) -> str:
    parts = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


# --------------------------------------------------------------------------- OpenAI-compatible

class EndpointConfig(BaseModel):
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint; unset fields come from the env."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    """e.g. ``http://127.0.0.1:8000/v1`` (vLLM), ``http://127.0.0.1:11434`` (Ollama); default
    ``$SCENEBENCH_LLM_BASE_URL``."""
    model: str | None = None
    """Model name the endpoint serves; default ``$SCENEBENCH_LLM_MODEL``."""
    api_key_env: str = ENV_API_KEY
    """Environment variable holding the API key (sent as a Bearer token when set)."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Per request (read timeout); connecting has ``min(10, timeout_s)``."""
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries after the first try on 429, 5xx, timeouts and connection errors."""
    backoff_s: float = Field(default=1.0, ge=0)
    """First retry waits this long, then doubles (plus up to 10% jitter)."""
    max_backoff_s: float = Field(default=30.0, ge=0)
    context_tokens: int = Field(default=8192, ge=256)
    """The served model's context window (endpoints do not report it)."""

    def resolved(self) -> EndpointConfig:
        """A copy with ``base_url`` and ``model`` filled from the environment when unset."""
        return self.model_copy(update={
            "base_url": self.base_url or os.environ.get(ENV_BASE_URL) or None,
            "model": self.model or os.environ.get(ENV_MODEL) or None})


def chat_url(base_url: str) -> str:
    """``.../v1/chat/completions`` from a base URL with or without ``/v1``."""
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def _public_url(url: str) -> str:
    """The URL without user info or query string (they may hold credentials)."""
    import httpx

    u = httpx.URL(url)
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.host}{port}{u.path}"


class OpenAIBackend:
    """Chat completions over HTTP with timeouts and exponential backoff."""

    kind = "openai"
    random_init = False

    def __init__(self, config: EndpointConfig) -> None:
        import httpx

        cfg = config.resolved()
        if not cfg.base_url:
            raise Unavailable(NOT_CONFIGURED)
        if not cfg.model:
            raise Unavailable(f"{ENV_BASE_URL} is set but the model is not: set {ENV_MODEL} "
                              "to a model name the endpoint serves")
        if not cfg.base_url.startswith(("http://", "https://")):
            raise BadInput("LLM base URL must start with http:// or https://, "
                           f"got {_public_url(cfg.base_url)!r}")
        self.config = cfg
        self.model = cfg.model
        self.revision: str | None = None
        self.context_tokens = cfg.context_tokens
        self.url = chat_url(cfg.base_url)
        self.public_url = _public_url(self.url)
        self._client = httpx.Client(timeout=httpx.Timeout(cfg.timeout_s, connect=min(10.0, cfg.timeout_s)))

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIBackend(url={self.public_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._client.close()

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.kind, "model": self.model, "endpoint": self.public_url,
                "api_key_env": self.config.api_key_env, "context_tokens": self.context_tokens,
                "random_init": False}

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.config.api_key_env)
        line = " ".join(text.split())
        return line.replace(key, "***") if key else line

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.config.backoff_s * (2 ** attempt)
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        delay = min(delay, self.config.max_backoff_s) * (1.0 + 0.1 * random.random())
        time.sleep(delay)

    def generate(self, messages: list[Message], *, max_new_tokens: int) -> Completion:
        """POST the chat; retry 429/5xx/timeouts/connection errors; raise BackendError at the end."""
        import httpx

        body = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                "temperature": 0.0, "stream": False}
        attempts = self.config.max_retries + 1
        last = ""
        unreachable = False
        for attempt in range(attempts):
            retry_after: str | None = None
            unreachable = False
            t0 = time.perf_counter()
            try:
                resp = self._client.post(self.url, json=body, headers=self._headers())
            except httpx.TimeoutException:
                last = f"timed out after {self.config.timeout_s:g}s"
            except httpx.TransportError as exc:
                # ConnectError: refused or unknown host, nothing serves there (a read error
                # after connecting is a server that is up but failing).
                unreachable = isinstance(exc, httpx.ConnectError)
                last = f"cannot connect ({type(exc).__name__}: {self._scrub(str(exc))[:160]})"
            else:
                latency = time.perf_counter() - t0
                if resp.status_code in (401, 403):
                    if os.environ.get(self.config.api_key_env):
                        raise AuthError(f"HTTP {resp.status_code} from {self.public_url}: the API key in "
                                        f"{self.config.api_key_env} was refused; set it to a valid key")
                    raise AuthError(f"HTTP {resp.status_code} from {self.public_url}: the endpoint needs an "
                                    f"API key; set {self.config.api_key_env}")
                if resp.status_code == 429 or resp.status_code >= 500:
                    retry_after = resp.headers.get("retry-after")
                    last = f"HTTP {resp.status_code}: {self._scrub(resp.text)[:160]}"
                elif resp.status_code != 200:
                    raise BackendError(f"HTTP {resp.status_code} from {self.public_url} (model "
                                       f"{self.model}): {self._scrub(resp.text)[:200]}")
                else:
                    return self._completion(resp, messages, latency)
            if attempt + 1 < attempts:
                log.debug("LLM call to %s failed (%s); retry %d of %d", self.public_url, last,
                          attempt + 1, self.config.max_retries)
                self._wait(attempt, retry_after)
        raise BackendError(f"{self.public_url} (model {self.model}): {last} "
                           f"({attempts} attempt{'s' if attempts > 1 else ''})", unreachable=unreachable)

    def _completion(self, resp: Any, messages: list[Message], latency: float) -> Completion:
        try:
            data = resp.json()
            choice = data["choices"][0]
            content = choice["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"{self.public_url}: response is not an OpenAI chat completion: "
                               f"{self._scrub(resp.text)[:160]}") from None
        if isinstance(content, list):  # some servers return content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text = "" if content is None else str(content)
        usage = data.get("usage") or {}
        tokens_in = usage.get("prompt_tokens")
        tokens_out = usage.get("completion_tokens")
        if not isinstance(tokens_in, int):
            tokens_in = estimate_tokens(_message_text(messages))
        if not isinstance(tokens_out, int):
            tokens_out = estimate_tokens(text)
        return Completion(text=text, tokens_in=int(tokens_in), tokens_out=int(tokens_out),
                          latency_s=latency, finish_reason=choice.get("finish_reason"))


# --------------------------------------------------------------------------- transformers

class TransformersBackend:
    """A local causal LM through its chat template; greedy decoding."""

    kind = "transformers"

    def __init__(self, ref: ModelRef, device: str = "cpu", *, context_tokens: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.ref = ref
        resolved = resolve(ref)
        self.resolved = resolved
        local_only = resolved.source != "hub" or hub_offline()
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(
                resolved.location, revision=resolved.revision, local_files_only=local_only)
            dtype = torch.float16 if device == "cuda" else torch.float32
            lm: Any = AutoModelForCausalLM.from_pretrained(
                resolved.location, revision=resolved.revision, dtype=dtype, local_files_only=local_only)
            self.lm = lm.to(device).eval()
        except (OSError, ValueError, ImportError) as exc:
            raise Unavailable(hub_unavailable_reason(ref, exc)) from None
        if not getattr(self.tokenizer, "chat_template", None):
            raise Unavailable(f"{ref.id}: the tokenizer has no chat template; use an instruction-tuned model")
        self.device = device
        self.random_init = resolved.random_init
        if resolved.source == "hub":
            self.model, self.revision = ref.id, ref.revision
        else:
            # Local, packaged and tiny weights are named by their checksum so cache keys
            # stay the same on every machine and change when the weights do.
            digest = (weights_checksum(resolved.location) or "")[:16]
            portable = (ref.id if resolved.source in ("tiny", "package")
                        else f"local:{Path(resolved.location).name}")
            self.model, self.revision = portable, f"sha256:{digest}"
        window = int(getattr(self.lm.config, "max_position_embeddings", 0) or 4096)
        self.context_tokens = min(window, context_tokens) if context_tokens else window

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.kind, **self.resolved.provenance(), "device": self.device,
                "context_tokens": self.context_tokens, "decoding": "greedy"}

    def generate(self, messages: list[Message], *, max_new_tokens: int) -> Completion:
        import torch

        for m in messages:
            if not isinstance(m.get("content"), str):
                raise BadInput("the transformers backend takes text messages only; use an "
                               "OpenAI-compatible endpoint for the vision-language extractor")
        t0 = time.perf_counter()
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        inputs = {k: v.to(self.device) for k, v in encoded.items()}
        n_in = int(inputs["input_ids"].shape[1])
        if n_in + max_new_tokens > self.context_tokens:
            raise BackendError(f"{self.model}: prompt of {n_in} tokens + {max_new_tokens} new tokens "
                               f"exceeds the context window of {self.context_tokens}")
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.lm.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                   pad_token_id=pad)
        new = out[0, n_in:]
        text = str(self.tokenizer.decode(new, skip_special_tokens=True))
        eos = self.tokenizer.eos_token_id
        finish = "stop" if len(new) and int(new[-1]) == eos else "length"
        return Completion(text=text, tokens_in=n_in, tokens_out=int(len(new)),
                          latency_s=time.perf_counter() - t0, finish_reason=finish)


# --------------------------------------------------------------------------- selection

BackendKind = Literal["auto", "openai", "transformers"]


def select_backend(kind: BackendKind, endpoint: EndpointConfig, model: ModelRef | None, device: str,
                   *, context_tokens: int | None = None) -> LLMBackend:
    """The backend a configuration asks for.

    ``auto``: the endpoint when a base URL is configured or in ``$SCENEBENCH_LLM_BASE_URL``,
    else the local ``model``; with neither, :class:`Unavailable` says what to set.
    """
    ep = endpoint.resolved()
    if context_tokens is not None:
        ep = ep.model_copy(update={"context_tokens": context_tokens})
    if kind == "openai" or (kind == "auto" and ep.base_url):
        return OpenAIBackend(ep)
    if kind == "transformers" or (kind == "auto" and model is not None):
        if model is None:
            raise BadInput("backend 'transformers' needs a 'model:' (hub id and revision) "
                           "in the configuration")
        return TransformersBackend(model, device, context_tokens=context_tokens)
    raise Unavailable(NOT_CONFIGURED)
