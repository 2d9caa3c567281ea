"""The Ray engine of :func:`bench.store.index_videos`: pending videos stream through a Ray Data
actor pool (each actor builds the encoder once), workers write artefacts to the store's artefact
location (a directory the nodes share, or an object store through fsspec), and the driver alone
registers them in the catalog as they arrive.

Ray is imported only here and only when the engine runs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import bench
from bench.errors import BadInput, Unavailable
from bench.store.artefacts import Kind, Written, write_artefact
from bench.store.engines import EngineConfig
from bench.store.location import Location
from bench.video.probe import ProbeInfo

log = logging.getLogger("bench")

FORWARDED_ENV = ("SCENEBENCH_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")
"""Environment variables (by prefix) the workers get from the driver: the cache and offline
settings decide which models they load, and must agree with the driver's."""


RETRIES = 3
"""Times a video whose worker died is sent again."""


class VideoFailed(BadInput):
    """A video a worker could not compute; the reason is the worker's one-line error."""


def connect(config: EngineConfig) -> Any:
    """The ``ray`` module, connected: to ``config.ray_address``, to the cluster this process
    already joined, or to a new local one. One-line errors for a missing Ray or a cluster
    that cannot be reached."""
    config.check()
    import ray
    import ray.data  # noqa: F401  (ray.data below)

    if ray.is_initialized():
        return ray
    try:
        ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=False,
                 runtime_env=_runtime_env(config))
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = config.ray_address or "a new local cluster"
        reason = " ".join(str(exc).split())[:300]
        raise Unavailable(f"cannot start or join Ray at {where}: {reason}") from None
    return ray


def _runtime_env(config: EngineConfig) -> dict[str, Any]:
    """The job's environment: workers import this very ``bench`` (through PYTHONPATH on a
    local cluster, shipped as a module to a remote one, whose nodes do not share this file
    system) and see the driver's cache and offline settings. A cluster this process joined
    before (``ray.init`` by the caller) keeps the environment it was given."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    package = Path(bench.__file__).resolve().parent
    if config.ray_address in (None, "local"):
        paths = [str(package.parent), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return {"env_vars": env}
    return {"env_vars": env, "py_modules": [str(package)]}


def _compute_batch(compute: Callable[..., Any], where: Location, ex_key: str, kind: Kind,
                   batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Compute and write each video of ``batch``; per video where its file went, or why it
    failed (as JSON text)."""
    results = []
    for video_id, path, probe in zip(batch["video_id"], batch["path"], batch["probe"], strict=True):
        try:
            info = ProbeInfo.from_dict(json.loads(str(probe)))
            out, meta = compute(Path(str(path)), info)
            w = write_artefact(where, str(video_id), ex_key, kind, out, meta)
            results.append(json.dumps({"written": [w.kind, w.relpath, w.nbytes, w.sha256,
                                                   w.arrays, w.meta_json]}))
        except Exception as exc:  # a per-video failure, recorded by the driver
            reason = " ".join(str(exc).split()) or "no message"
            results.append(json.dumps({"error": f"{type(exc).__name__}: {reason}"}))
    return {"position": batch["position"], "result": np.array(results, dtype=object)}


class _Worker:
    """One actor of the pool: builds the encoder once (``recipe()``), then computes videos."""

    def __init__(self, recipe: bytes, where: str, ex_key: str, kind: Kind) -> None:
        import cloudpickle

        self.compute = cloudpickle.loads(recipe)()
        self.where, self.ex_key, self.kind = Location(where), ex_key, kind

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _compute_batch(self.compute, self.where, self.ex_key, self.kind, batch)


def _task(batch: dict[str, np.ndarray], payload: bytes, where: str, ex_key: str,
          kind: Kind) -> dict[str, np.ndarray]:
    """A stateless task: ``compute`` itself was shipped (no model to build once)."""
    import cloudpickle

    return _compute_batch(cloudpickle.loads(payload), Location(where), ex_key, kind, batch)


def run_on_ray(config: EngineConfig, where: Location, ex_key: str, kind: Kind,
               jobs: Sequence[tuple[str, Path, ProbeInfo]], compute: Callable[..., Any],
               worker: Callable[[], Callable[..., Any]] | None) -> Iterator[tuple[int, Any]]:
    """``(position, Written | VideoFailed)`` for each ``(video_id, path, probe)`` of ``jobs``,
    in the order they finish. ``worker()`` builds the per-video compute once in each actor of
    a pool; without it, ``compute`` itself is shipped to plain tasks (it must pickle with
    cloudpickle; a model it loads lazily is loaded per video there).

    Videos stream one per task through the pool, so a slow video holds one actor, not the
    run; an actor that dies is restarted by Ray Data and its video computed again (the file
    name is the content hash, so a second write cannot leave two artefacts registered), up to
    :data:`RETRIES` times: a video that kills every worker it meets then stops the run with
    one line instead of restarting workers for ever.
    """
    import cloudpickle

    ray = connect(config)

    try:
        payload = cloudpickle.dumps(worker if worker is not None else compute)
    except Exception as exc:
        raise Unavailable(f"{ex_key}: this extractor cannot be sent to Ray workers ({exc}); "
                          "use --engine local") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the indexing loop draws its own bar
    ctx.print_on_execution_start = False
    resources = ray.cluster_resources()
    if config.gpus_per_worker > 0:
        fit = int(resources.get("GPU", 0) // config.gpus_per_worker)
    else:
        fit = int(resources.get("CPU", 1) // config.cpus_per_worker)
    workers = max(1, min(config.workers or fit or 1, len(jobs)))
    rows = [{"position": i, "video_id": video_id, "path": str(path), "probe": json.dumps(info.to_dict())}
            for i, (video_id, path, info) in enumerate(jobs)]
    items = ray.data.from_items(rows, override_num_blocks=len(rows))
    args = (payload, where.where, ex_key, kind)
    if worker is not None:  # a model to load once per actor: an actor pool
        ds = items.map_batches(_Worker, fn_constructor_args=args, batch_size=1, batch_format="numpy",
                               compute=ray.data.ActorPoolStrategy(size=workers),
                               num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker or None,
                               max_task_retries=RETRIES)
    else:  # light or self-contained work: plain tasks, no actor start-up
        ds = items.map_batches(_task, fn_args=args, batch_size=1, batch_format="numpy",
                               compute=ray.data.TaskPoolStrategy(size=workers),
                               num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker or None,
                               max_retries=RETRIES)
    log.info("%s: %d videos on Ray, %d workers of %g CPU / %g GPU", ex_key, len(jobs), workers,
             config.cpus_per_worker, config.gpus_per_worker)
    try:
        for row in ds.iter_rows():
            got = json.loads(row["result"])
            if "error" in got:
                yield int(row["position"]), VideoFailed(got["error"])
                continue
            k, relpath, nbytes, digest, arrays, meta_text = got["written"]
            yield int(row["position"]), Written(k, relpath, nbytes, digest, arrays, meta_text)
    except ray.exceptions.RayError as exc:
        first = " ".join(str(exc).split())[:300]
        raise Unavailable(f"{ex_key}: the Ray run stopped ({first}); what finished is kept, "
                          f"rerun to resume") from None

