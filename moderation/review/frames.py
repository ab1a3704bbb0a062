"""One still frame of a screen slice, as JPEG, for showing where OCR read the flagged text.

Blocking (PyAV decode + Pillow encode); callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import io

import av


class FrameUnavailable(Exception):
    """The file has no decodable video frame at or after the asked time."""


def frame_jpeg(data: bytes, t: float, max_width: int = 1920, quality: int = 85) -> tuple[bytes, int, int]:
    """JPEG of the first frame at or after ``t`` seconds (the last frame if ``t`` is past the end).

    Returns (jpeg, width, height) with the frame's native size, so OCR boxes (in the frame's
    pixels) can be drawn on it by scaling.
    """
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except av.FFmpegError as exc:
        raise FrameUnavailable(f"not a readable media file: {exc}") from exc
    try:
        if not container.streams.video:
            raise FrameUnavailable("this recording has no video")
        stream = container.streams.video[0]
        chosen = None
        try:
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is not None and frame.time >= t - 1e-3:
                    break
        except av.FFmpegError:
            pass  # a damaged tail: keep the last good frame
        if chosen is None:
            raise FrameUnavailable("no decodable video frame")
        image = chosen.to_image()
        width, height = image.size
        if width > max_width:
            image = image.resize((max_width, round(height * max_width / width)))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=quality)
        return out.getvalue(), width, height
    finally:
        container.close()
