"""A scripted OpenAI-compatible chat server for tests: ``/v1/chat/completions`` on 127.0.0.1.

Real HTTP (stdlib ``http.server``) on a free port in a daemon thread, so the httpx client,
its timeouts and its retries run for real. Replies come from a script: a list of
:class:`Reply` (taken in order, the last one repeating) or a function of the request body.
Every request is recorded; past ``max_requests`` the server answers 503, so a client bug
cannot loop forever.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 20 * 1024 * 1024
MAX_DELAY_S = 10.0


@dataclass
class Reply:
    """One scripted answer: ``content`` as the assistant message, or an HTTP error."""

    content: str | None = None
    status: int = 200
    delay_s: float = 0.0
    """Seconds to wait before answering (for client timeouts); capped at 10."""
    usage: dict[str, int] | None = None
    """``prompt_tokens`` / ``completion_tokens``; default: characters / 4."""
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: str | None = None
    """Sent as-is instead of a chat completion (malformed responses)."""


Script = Sequence[Reply] | Callable[[dict[str, Any]], Reply]


def scenes_json(*scenes: tuple[str, str] | tuple[str, str, float]) -> str:
    """``[("00:05-00:10", "desc"[, confidence]), ...]`` as the JSON answer the prompt asks for."""
    out = []
    for s in scenes:
        item: dict[str, Any] = {"Timestamp": s[0], "Description": s[1], "Evidence": [s[1]]}
        if len(s) > 2:
            item["Confidence"] = s[2]
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of a request (text parts joined)."""
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content)
    return ""


_LINE = re.compile(r"^(\d{2}:\d{2}(?::\d{2})?-\d{2}:\d{2}(?::\d{2})?) (.*)$")


def keyword_responder(body: dict[str, Any]) -> Reply:
    """A deterministic stand-in for an LLM: the metadata lines (summary excluded) sharing most
    words with the query, up to three, shortest first on ties, as scenes whose confidence is
    the share of query words matched. Answers ``[]`` when no line shares a word."""
    text = user_text(body)
    query = text.split("<<<QUERY>>>", 1)[-1].split("<<<END QUERY>>>", 1)[0]
    data = text.split("<<<VIDEO METADATA>>>", 1)[-1].split("<<<END VIDEO METADATA>>>", 1)[0]
    words = {w for w in re.findall(r"\w+", query.lower()) if len(w) > 2}
    section = ""
    scored = []
    for line in data.splitlines():
        if line.startswith("["):
            section = line
            continue
        m = _LINE.match(line)
        if not m or section == "[summary]":
            continue
        hits = len(words & set(re.findall(r"\w+", m.group(2).lower())))
        if hits:
            lo, hi = (sum(int(x) * 60 ** i for i, x in enumerate(reversed(t.split(":"))))
                      for t in m.group(1).split("-"))
            scored.append((-hits, hi - lo, len(scored), m.group(1), m.group(2)))
    scored.sort()
    return Reply(scenes_json(*[(stamp, desc[:80], round(-neg / len(words), 2))
                               for neg, _, _, stamp, desc in scored[:3]]))


class ScriptedLLMServer:
    """``with ScriptedLLMServer([Reply(...)]) as srv: ... srv.base_url ... srv.requests``."""

    def __init__(self, script: Script, *, max_requests: int = 200) -> None:
        self.script = script
        self.max_requests = max_requests
        self.requests: list[dict[str, Any]] = []
        """Each request: ``{"path", "body", "authorization"}`` in arrival order."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def n_requests(self) -> int:
        with self._lock:
            return len(self.requests)

    def _next(self, body: dict[str, Any]) -> Reply:
        if callable(self.script):
            return self.script(body)
        with self._lock:
            i = len(self.requests) - 1
        return self.script[min(i, len(self.script) - 1)]

    def start(self) -> ScriptedLLMServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, payload: str, headers: dict[str, str] | None = None) -> None:
                data = payload.encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._send(413, '{"error": {"message": "request too large"}}')
                    return
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, '{"error": {"message": "body is not JSON"}}')
                    return
                with outer._lock:
                    outer.requests.append({"path": self.path, "body": body,
                                           "authorization": self.headers.get("Authorization")})
                    count = len(outer.requests)
                if count > outer.max_requests:
                    self._send(503, '{"error": {"message": "test server request limit reached"}}')
                    return
                if not self.path.rstrip("/").endswith("/v1/chat/completions"):
                    self._send(404, '{"error": {"message": "not found"}}')
                    return
                reply = outer._next(body)
                if reply.delay_s > 0:
                    outer._stop.wait(min(reply.delay_s, MAX_DELAY_S))
                if reply.raw_body is not None:
                    self._send(reply.status, reply.raw_body, reply.headers)
                    return
                if reply.status != 200:
                    msg = json.dumps({"error": {"message": f"scripted HTTP {reply.status}"}})
                    self._send(reply.status, msg, reply.headers)
                    return
                content = reply.content or ""
                prompt_chars = sum(len(json.dumps(m.get("content"))) for m in body.get("messages", []))
                usage = reply.usage or {"prompt_tokens": prompt_chars // 4,
                                        "completion_tokens": max(1, len(content) // 4)}
                usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
                doc = {"id": f"chatcmpl-{count}", "object": "chat.completion", "created": 0,
                       "model": body.get("model", ""), "usage": usage,
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}]}
                self._send(200, json.dumps(doc), reply.headers)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def handmade_segments(vid: str = "v1") -> list[Any]:
    """Fixed segments of a 95-second video: captions, speech with and without speakers, OCR
    with boxes. The golden files of the rendered metadata and the prompt come from these."""
    from bench.text.segments import Segment

    return [
        Segment(vid, 0.0, 10.0, "caption", "a man walks a brown dog in a park"),
        Segment(vid, 10.0, 40.0, "caption", "a kitchen with a red kettle on the stove"),
        Segment(vid, 40.0, 95.0, "caption", "a city street at night with neon signs"),
        Segment(vid, 2.0, 6.2, "speech", "Good morning, let's take the dog out.", "en",
                {"speaker": "Alice"}),
        Segment(vid, 12.0, 18.0, "speech", "Now I'll boil water\nfor tea.", "en", {"speaker": "Bob"}),
        Segment(vid, 45.0, 50.5, "speech", "The city never sleeps.", "en"),
        Segment(vid, 15.0, 25.0, "ocr", "RECIPE: GREEN TEA", None,
                {"box": [0.3, 0.05, 0.7, 0.15], "position": "top"}),
        Segment(vid, 50.0, 60.0, "ocr", "OPEN 24 HOURS", None,
                {"box": [0.7, 0.4, 0.95, 0.6], "position": "middle"}),
    ]


def scene_segments(root: Path, vids: set[str] | None = None) -> dict[str, list[Any]]:
    """Segments from a built synthetic set's ground truth (``scenes.jsonl``): narration as
    speech, telops (top left) and lower-third captions (bottom) as on-screen text."""
    from bench.datasets.synthetic.queries import load_scenes
    from bench.text.segments import Segment

    out: dict[str, list[Any]] = {}
    for row in load_scenes(root):
        vid = row["vid"]
        if vids is not None and vid not in vids:
            continue
        segs = out.setdefault(vid, [])
        n = row.get("narration")
        if n:
            segs.append(Segment(vid, float(n["start"]), float(n["end"]), "speech", n["text"], n["lang"]))
        for kind, where in (("telop", "top-left"), ("caption", "bottom-center")):
            t = row.get(kind)
            if t:
                segs.append(Segment(vid, float(row["start"]), float(row["end"]), "ocr", t["text"], t["lang"],
                                    {"position": where}))
    return out
