"""Face presence in camera snapshots with OpenCV's bundled Haar frontal-face cascade.

Presence only (is somebody in front of the camera, how many); no recognition, no identity.
The cascade loads once per process; calls are serialised because a ``CascadeClassifier`` is
not documented as thread-safe (a call takes milliseconds).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

FaceBox = tuple[int, int, int, int]  # x, y, width, height in pixels

_CASCADE = "haarcascade_frontalface_default.xml"
_cascade: Any = None
_lock = threading.Lock()


def _get_cascade() -> Any:
    global _cascade
    if _cascade is None:
        path = Path(cv2.data.haarcascades) / _CASCADE  # type: ignore[attr-defined]
        clf = cv2.CascadeClassifier(str(path))
        if clf.empty():
            raise RuntimeError(f"OpenCV face cascade missing at {path} (opencv-python-headless <5 ships it)")
        _cascade = clf
    return _cascade


def detect_faces(image: np.ndarray, *, min_size: int = 40) -> list[FaceBox]:
    """Frontal faces in a BGR image, largest first."""
    if image.size == 0:
        return []
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    grey = cv2.equalizeHist(grey)
    with _lock:
        found = _get_cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    boxes = [(int(x), int(y), int(w), int(h)) for x, y, w, h in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b[0], b[1]))
