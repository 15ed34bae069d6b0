"""Per-image detection results (what Detector.predict returns)."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np


def _round_to(v: float, per_unit: float) -> float:
    # The CLI rounds with std::round (half away from zero), not Python's
    # round (half to even): the JSON must read the same.
    x = float(v) * per_unit
    return math.copysign(math.floor(abs(x) + 0.5), x) / per_unit


# Colours per class for plot(): distinct hues, stable across runs.
_PALETTE = np.array(
    [
        (255, 56, 56), (255, 157, 151), (255, 112, 31), (255, 178, 29), (207, 210, 49),
        (72, 249, 10), (146, 204, 23), (61, 219, 134), (26, 147, 52), (0, 212, 187),
        (44, 153, 168), (0, 194, 255), (52, 69, 147), (100, 115, 255), (0, 24, 236),
        (132, 56, 255), (82, 0, 133), (203, 56, 255), (255, 149, 200), (255, 55, 199),
    ],
    dtype=np.uint8,
)


class Results:
    """The detections of one image (or video frame).

    Arrays are NumPy: ``xyxy`` (n, 4) float32 boxes in original-image pixels
    (x1, y1, x2, y2; not clipped, as the official pipeline leaves them),
    ``confidence`` (n,) float32, ``class_id`` (n,) int64; ``class_name`` the
    names of those classes. Detections are sorted by confidence, highest first.
    """

    __slots__ = (
        "xyxy", "confidence", "class_id", "names", "orig_shape", "orig_img", "channels", "path",
        "timings", "decode", "input_copied", "frame_index", "time_s", "stream",
    )

    def __init__(self, raw: Dict[str, Any], names: Sequence[str], orig_img: Optional[np.ndarray] = None,
                 channels: str = "rgb", path: Optional[str] = None):
        self.xyxy: np.ndarray = raw["xyxy"]
        self.confidence: np.ndarray = raw["confidence"]
        self.class_id: np.ndarray = raw["class_id"]
        self.names: List[str] = list(names)
        self.orig_shape: Tuple[int, int] = (int(raw["height"]), int(raw["width"]))
        img = raw.get("image")
        self.orig_img: Optional[np.ndarray] = img if img is not None else orig_img
        self.channels: str = raw.get("channels", "rgb" if img is not None else channels)
        self.path: Optional[str] = path if path is not None else (raw.get("source") or None)
        t = raw["timings"]
        self.timings: Dict[str, float] = {k: float(t[k]) for k in ("decode", "preprocess", "inference", "postprocess")}
        self.timings["total"] = sum(self.timings.values())
        self.decode: Optional[Dict[str, Any]] = raw.get("decode")
        self.input_copied: bool = bool(raw.get("input_copied", False))
        self.frame_index: Optional[int] = raw.get("frame_index")
        self.time_s: Optional[float] = raw.get("time_s")
        self.stream: Optional[int] = raw.get("stream")

    def __len__(self) -> int:
        return int(self.confidence.shape[0])

    @property
    def class_name(self) -> List[str]:
        n = len(self.names)
        return [self.names[c] if 0 <= c < n else f"class{c}" for c in self.class_id.tolist()]

    def __repr__(self) -> str:
        where = f" {self.path!r}" if self.path else ""
        return (f"<damoyolo.Results{where} {self.orig_shape[1]}x{self.orig_shape[0]}, "
                f"{len(self)} detections, {self.timings['total']:.1f} ms>")

    def to_dict(self, full_precision: bool = False) -> Dict[str, Any]:
        """The record ``damoyolo detect --json`` writes for one image: file,
        width, height, decode, detections [{box, score, class_id, class_name}],
        timings_ms. Boxes are rounded to 0.01 px and scores to 1e-4 unless
        ``full_precision``, as the CLI does."""
        if full_precision:
            box = score = float
        else:
            def box(v):
                return _round_to(v, 100)

            def score(v):
                return _round_to(v, 1e4)
        dets = [
            {"box": [box(v) for v in b], "score": score(s), "class_id": int(c), "class_name": n}
            for b, s, c, n in zip(self.xyxy.tolist(), self.confidence.tolist(), self.class_id.tolist(),
                                  self.class_name)
        ]
        d: Dict[str, Any] = {
            "file": self.path,
            "width": self.orig_shape[1],
            "height": self.orig_shape[0],
            "decode": self.decode,
            "detections": dets,
            # draw and write: the CLI's fields; nothing is drawn or written here.
            "timings_ms": {**{k: _round_to(self.timings[k], 100) for k in
                              ("decode", "preprocess", "inference", "postprocess")}, "draw": 0.0, "write": 0.0},
        }
        if self.frame_index is not None:
            d["frame"] = self.frame_index
            d["time_s"] = self.time_s
        return d

    def to_json(self, full_precision: bool = False, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(full_precision), indent=indent)

    def plot(self, conf: float = 0.0, line_width: Optional[int] = None) -> np.ndarray:
        """A copy of the image with each box (confidence >= conf) drawn as a
        rectangle in its class's colour, in the image's own channel order
        (``channels``). No text labels (see docs/python.md, Missing)."""
        if self.orig_img is None:
            raise ValueError("these results keep no image to draw on")
        img = np.array(self.orig_img, copy=True)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        elif img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        h, w = img.shape[:2]
        lw = line_width or max(1, round((h + w) / 2 * 0.003))
        bgr_order = self.channels in ("bgr", "bgra")
        for (x1, y1, x2, y2), s, c in zip(self.xyxy.tolist(), self.confidence.tolist(), self.class_id.tolist()):
            if s < conf:
                continue
            colour = _PALETTE[c % len(_PALETTE)]
            if bgr_order:
                colour = colour[::-1]
            px = np.zeros(img.shape[2], dtype=np.uint8)
            px[:3] = colour
            if img.shape[2] == 4:
                px[3] = 255
            # Clip to the image; boxes may reach past its edges.
            a, b = max(0, int(round(x1))), min(w - 1, int(round(x2)))
            t, u = max(0, int(round(y1))), min(h - 1, int(round(y2)))
            if a > b or t > u:
                continue
            img[t:min(t + lw, u + 1), a:b + 1] = px
            img[max(u - lw + 1, t):u + 1, a:b + 1] = px
            img[t:u + 1, a:min(a + lw, b + 1)] = px
            img[t:u + 1, max(b - lw + 1, a):b + 1] = px
        return img
