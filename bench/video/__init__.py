"""Video I/O: probing, frame sampling with true timestamps (decord, PyAV fallback), audio.

Importing this package imports neither decord nor PyAV; they load on first use.
"""

from bench.video.audio import extract_audio, has_audio_stream
from bench.video.decode import sample_frames
from bench.video.decord_backend import choose_decoder, decord_available
from bench.video.frames import DecodeError, FrameBatch, FrameSelector, output_size, select_indices
from bench.video.packets import frame_times
from bench.video.probe import ProbeInfo, probe

__all__ = [
    "DecodeError",
    "FrameBatch",
    "FrameSelector",
    "ProbeInfo",
    "choose_decoder",
    "decord_available",
    "extract_audio",
    "frame_times",
    "has_audio_stream",
    "output_size",
    "probe",
    "sample_frames",
    "select_indices",
]
