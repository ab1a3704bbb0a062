"""Media helpers for the end-to-end classroom tests: speech made with espeak-ng, and checks that
a slice file plays (PyAV opens it and decodes every packet) and is not silence."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

SPEECH = ("the quick brown fox jumps over the lazy dog. one two three four five six seven. "
          "fractions are parts of a whole.")


def speech_wav(path: Path, text: str = SPEECH, rate: int = 48000) -> Path:
    """``text`` spoken by espeak-ng as 16-bit mono WAV at ``rate`` (about 6 s for the default)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True, timeout=60)
    if shutil.which("sox"):
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)], check=True,
                       capture_output=True, timeout=60)
        raw.unlink()
    else:
        raw.rename(path)
    return path


@dataclass
class Decoded:
    packets: int
    frames: int
    errors: int
    rms: float  # 0..1
    seconds: float


def decode_webm(path: Path) -> Decoded:
    """Demux and decode every packet of the file's first stream."""
    packets = frames = errors = 0
    squares, samples, seconds = 0.0, 0, 0.0
    with av.open(str(path)) as container:
        stream = container.streams[0]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                errors += 1
                continue
            for frame in decoded:
                frames += 1
                if isinstance(frame, av.AudioFrame):
                    pcm = frame.to_ndarray().astype(np.float64)
                    if frame.format.name.startswith("s16"):
                        pcm /= 32768.0
                    squares += float((pcm ** 2).sum())
                    samples += pcm.size
                    seconds += frame.samples / frame.sample_rate
    return Decoded(packets, frames, errors, (squares / max(samples, 1)) ** 0.5, seconds)
