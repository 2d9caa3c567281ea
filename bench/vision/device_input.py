"""The encoder's side of a stream of raw frames: pinned uint8 chunks copied to the device on a
side stream, resized and normalized there, and embeddings copied back asynchronously.

On the CPU the same steps run in the encoder's thread and give the same numbers as
preprocessing in the prefetch thread (the transform works frame by frame).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BadInput

if TYPE_CHECKING:
    import torch

    from bench.vision.transforms import ImageTransform


class DeviceInput:
    """uint8 ``(k, H, W, 3)`` chunks -> the encoder's input ``(n, 3, h, w)`` in ``dtype`` on
    ``device``.

    On CUDA each encoder thread gets its own compute stream and copy stream: the host-to-device
    copy of a chunk runs on the copy stream (from pinned memory it does not block the host),
    the compute stream waits for it, and embeddings come back through pinned memory with one
    event to wait on. With several encoder workers one worker's copies overlap another's
    kernels."""

    def __init__(self, transform: ImageTransform, device: str, dtype: torch.dtype) -> None:
        self.transform = transform
        self.device = device
        self.dtype = dtype
        self._local = threading.local()

    def _streams(self) -> tuple[Any, Any]:
        """(compute, copy) CUDA streams of the calling thread, made on first use."""
        import torch

        streams = getattr(self._local, "streams", None)
        if streams is None:
            streams = self._local.streams = (torch.cuda.Stream(), torch.cuda.Stream())
        return streams

    @contextlib.contextmanager
    def compute(self) -> Iterator[None]:
        """Run the block's kernels on this thread's compute stream (no-op on the CPU)."""
        if self.device != "cuda":
            yield
            return
        import torch

        with torch.cuda.stream(self._streams()[0]):
            yield

    def __call__(self, chunks: Sequence[torch.Tensor]) -> torch.Tensor:
        """The chunks, in order, preprocessed on the device; call inside :meth:`compute`."""
        import torch

        if not chunks:
            raise BadInput("no frames to preprocess")
        moved: list[torch.Tensor] = list(chunks)
        if self.device == "cuda":
            compute, copy = self._streams()
            copy.wait_stream(compute)  # reuses nothing the compute stream still reads
            with torch.cuda.stream(copy):
                moved = [c.to(self.device, non_blocking=True) for c in chunks]
            compute.wait_stream(copy)
            for m in moved:
                m.record_stream(compute)  # freed only once the compute stream is done with it
        parts = [self.transform(m, device=self.device) for m in moved]
        x = parts[0] if len(parts) == 1 else torch.cat(parts)
        return x.to(self.dtype)


def to_host(x: torch.Tensor) -> np.ndarray:
    """A device tensor as a float32 numpy array: on CUDA through pinned memory, the copy
    queued on the current stream and waited for with one event (the thread releases the GIL
    while it waits); on the CPU, the tensor's own memory."""
    import torch

    x = x.float()
    if x.device.type != "cuda":
        return x.numpy()
    host = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
    host.copy_(x, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    done.synchronize()
    return host.numpy()
