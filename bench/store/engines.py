"""Which engine computes the features of :func:`bench.store.index_videos`: this process
(``local``, the default) or the actor pools of a Ray cluster (``ray``), and its checks."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from bench.errors import BadInput, Unavailable

EngineKind = Literal["local", "ray"]
RAY_HINT = "install it with pip install 'scenebench[ray]', or use --engine local"
CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class EngineConfig:
    """How features are computed.

    ``ray_address``: a running cluster (``host:port``, ``ray://host:port`` or ``auto``);
    None starts a local one (or joins the one this process already started).
    ``cpus_per_worker`` / ``gpus_per_worker``: what each encoder actor reserves; ``workers``:
    actors in the pool (None: as many as the cluster's CPUs, or GPUs, allow).
    """

    kind: EngineKind = "local"
    ray_address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise BadInput(f"--engine must be local or ray, got {self.kind!r}")
        if self.kind == "local" and self.ray_address is not None:
            raise BadInput("--ray-address needs --engine ray")
        if self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise BadInput("a Ray worker needs more than 0 CPUs and at least 0 GPUs")
        if self.workers is not None and self.workers < 1:
            raise BadInput(f"workers must be at least 1, got {self.workers}")

    def check(self) -> None:
        """Fail early, in one line: Ray missing for ``ray`` (Unavailable), or an address
        where nothing answers (BadInput). Starts nothing."""
        if self.kind != "ray":
            return
        try:
            import ray  # noqa: F401
            import ray.data  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"--engine ray needs Ray Data ({exc}); {RAY_HINT}") from None
        if self.ray_address is not None:
            check_reachable(self.ray_address)


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address, None for ``auto``/``local`` (found by Ray itself)."""
    if address in ("auto", "local"):
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BadInput(f"--ray-address {address!r} is not host:port, ray://host:port or auto")
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """BadInput in one line when nothing accepts a connection at ``address`` within
    :data:`CONNECT_TIMEOUT_S` (``ray.init`` itself would wait much longer)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BadInput(f"cannot reach the Ray cluster at {address} ({reason}); start it with "
                       "'ray start --head' there, or leave out --ray-address for a local one") from None
