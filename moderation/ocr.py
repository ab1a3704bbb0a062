"""Text on screen: RapidOCR (PP-OCRv4, Chinese + English, ONNX models shipped in its wheel).

The engine loads once per process. Calls are serialised with a lock: the engine object keeps
per-call state, and with two cores one OCR at a time is as fast as two anyway.
Blocking; callers on an event loop use ``asyncio.to_thread``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True)
class OcrBox:
    """One line of text found in an image: the text, the recogniser's score (0..1) and its
    quadrilateral (4 points, pixels, clockwise from top-left)."""

    text: str
    score: float
    box: tuple[Point, Point, Point, Point]

    @property
    def top(self) -> float:
        return min(p[1] for p in self.box)

    @property
    def left(self) -> float:
        return min(p[0] for p in self.box)

    @property
    def bottom(self) -> float:
        return max(p[1] for p in self.box)


_engine: Any = None
_engine_lock = threading.Lock()
_call_lock = threading.Lock()


def get_engine() -> Any:
    """The process's RapidOCR engine, built on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from rapidocr_onnxruntime import RapidOCR

            _engine = RapidOCR()
        return _engine


def read_text(image: np.ndarray, *, min_score: float = 0.5) -> list[OcrBox]:
    """Lines of text in a BGR image, in reading order (top to bottom, then left to right)."""
    if image.size == 0:
        return []
    engine = get_engine()
    with _call_lock:
        result, _ = engine(image)
    boxes = []
    for quad, text, score in result or []:
        text = str(text).strip()
        if not text or float(score) < min_score:
            continue
        pts = tuple((round(float(x), 1), round(float(y), 1)) for x, y in quad)
        boxes.append(OcrBox(text=text, score=round(float(score), 4), box=pts))  # type: ignore[arg-type]
    return sort_reading_order(boxes)


def sort_reading_order(boxes: list[OcrBox]) -> list[OcrBox]:
    """Top-to-bottom lines, left-to-right within a line (boxes whose vertical middles are close)."""
    ordered = sorted(boxes, key=lambda b: (b.top, b.left))
    lines: list[list[OcrBox]] = []
    for b in ordered:
        mid = (b.top + b.bottom) / 2
        if lines:
            last = lines[-1][0]
            if abs(mid - (last.top + last.bottom) / 2) < max(8.0, (last.bottom - last.top) / 2):
                lines[-1].append(b)
                continue
        lines.append([b])
    return [b for line in lines for b in sorted(line, key=lambda x: x.left)]
