"""damoyolo: DAMO-YOLO object detection on the CPU, from Python.

    import damoyolo
    det = damoyolo.Detector("damoyolo_T_640.onnx")
    r = det("street.jpg")                 # a path, encoded bytes or a uint8 HWC array
    print(r.xyxy, r.confidence, r.class_name)

The work is done by the C++ library (damoyolo._core); this module turns
Python inputs into its calls and its outputs into NumPy arrays. Every native
call releases the GIL, and one Detector may be used from several threads at
once (docs/python.md says how and what it gains).
"""

from __future__ import annotations

import glob as _glob
import os
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from . import _core
from ._errors import (Error, FileError, InvalidArgumentError, NotFoundError, OutOfRangeError, ParseError,
                      UnsupportedError)
from .results import Results

__all__ = [
    "Detector", "Session", "Results", "decode_image",
    "Error", "NotFoundError", "InvalidArgumentError", "OutOfRangeError", "ParseError", "UnsupportedError",
    "FileError",
]
__version__ = "0.1.0"

# What predict() treats as an image file in a directory or glob (the decoder
# itself goes by the magic bytes, never by the name).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# What predict() sends to the video pipeline instead.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")
_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "rtp://", "tcp://", "srt://",
                "file://")

Source = Union[np.ndarray, str, os.PathLike, bytes, bytearray, memoryview]


def _threads(threads: Optional[int]) -> int:
    return 0 if threads is None else int(threads)


def _channels(channels: Optional[str], bgr: Optional[bool]) -> str:
    if bgr is not None:
        if channels is not None:
            raise InvalidArgumentError("pass either bgr= or channels=, not both")
        return "bgr" if bgr else "rgb"
    ch = (channels or "rgb").lower()
    if ch not in ("rgb", "bgr", "rgba", "bgra"):
        raise InvalidArgumentError(f"channels must be 'rgb', 'bgr', 'rgba' or 'bgra', got {channels!r}")
    return ch


def _is_video(s: str) -> bool:
    low = s.lower()
    return (low.endswith(VIDEO_SUFFIXES) or low.startswith(_URL_SCHEMES) or s.startswith("/dev/video")
            or s == "-")


def _expand(source: Union[str, os.PathLike]) -> List[str]:
    """A path, directory (recursive, name order) or glob -> image paths."""
    s = os.fspath(source)
    if os.path.isdir(s):
        out = []
        for root, dirs, files in os.walk(s):
            dirs.sort()
            out.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES))
        if not out:
            raise InvalidArgumentError(f"no images (.jpg, .jpeg, .png, .bmp) in directory '{s}'")
        return out
    if any(ch in s for ch in "*?[") and not os.path.exists(s):
        out = sorted(p for p in _glob.glob(s, recursive=True) if os.path.isfile(p))
        if not out:
            raise NotFoundError(f"no files match '{s}'")
        return out
    return [s]


class Detector:
    """Image in, detections out: decode, preprocess, the network, head decode
    and class-aware NMS, all in C++.

    model      path to a DAMO-YOLO ONNX export (two-output or --benchmark form)
    conf, iou  thresholds; None: the model family's official ones (0.05 / 0.7;
               nano models 0.03 / 0.65). The CLI's ``detect`` shows >= 0.25 by
               default; pass conf=0.25 for that.
    max_det    detections kept per image (the official 500)
    classes    keep only these class ids or names
    threads    inference threads (None: every core)
    precision  "fp32" or "bf16" (AMX/AVX512-BF16 machines)
    batch      images per network run when a list is given
    engine     "auto", "optimized" or "reference"
    labels     a labels file (one name per line); else the model's own names

    Safe to call from several threads at once: each concurrent call runs on a
    C++ Detector of its own over one shared, loaded model.
    """

    def __init__(self, model: Union[str, os.PathLike], conf: Optional[float] = None, iou: Optional[float] = None,
                 max_det: int = 500, classes: Optional[Sequence[Union[int, str]]] = None,
                 threads: Optional[int] = None, precision: str = "fp32", batch: int = 1, engine: str = "auto",
                 labels: Optional[Union[str, os.PathLike]] = None):
        self.model = os.fspath(model)
        ids = [c for c in (classes or []) if not isinstance(c, str)]
        named = [c for c in (classes or []) if isinstance(c, str)]
        self._core = _core.Detector(self.model, conf, iou, int(max_det), [int(c) for c in ids] if not named else [],
                                    _threads(threads), precision, engine, int(batch),
                                    os.fspath(labels) if labels is not None else "")
        self.names: List[str] = list(self._core.names)
        if named:
            # Names need the model's labels, known only once it is loaded.
            lookup = {n: i for i, n in enumerate(self.names)}
            missing = [n for n in named if n not in lookup]
            if missing:
                raise InvalidArgumentError(f"unknown class name(s) {missing}; the model's classes are {self.names}")
            self._core.set_classes([int(c) for c in ids] + [lookup[n] for n in named])
        self._options = dict(conf=conf, iou=iou, max_det=int(max_det), threads=_threads(threads),
                             precision=precision, batch=int(batch))
        self._classes_ids = [int(c) for c in ids] + [self.names.index(n) for n in named]

    @property
    def input_size(self) -> tuple:
        """(width, height) of the network input."""
        return (self._core.input_width, self._core.input_height)

    @property
    def conf(self) -> float:
        return self._core.conf

    @property
    def iou(self) -> float:
        return self._core.iou

    @property
    def batch(self) -> int:
        return self._core.batch

    def stats(self) -> dict:
        """detectors (C++ Detectors created for concurrent calls), idle,
        input_copies (arrays whose layout had to be copied), last_view_data
        (address the last in-memory image was read from)."""
        return dict(self._core.stats())

    def __repr__(self) -> str:
        w, h = self.input_size
        return f"<damoyolo.Detector {self.model!r} {w}x{h}, {len(self.names)} classes>"

    # -- single calls --------------------------------------------------------

    def __call__(self, source: Union[Source, Sequence[Source]], *, channels: Optional[str] = None,
                 bgr: Optional[bool] = None) -> Union[Results, List[Results]]:
        """One image (array, path, bytes) -> Results; a list, directory, glob
        or video -> list of Results (see predict)."""
        out = self.predict(source, channels=channels, bgr=bgr)
        single = isinstance(source, (np.ndarray, bytes, bytearray, memoryview))
        if isinstance(source, (str, os.PathLike)):
            s = os.fspath(source)
            # A glob is a list even when it matches one file.
            is_glob = not os.path.exists(s) and any(c in s for c in "*?[")
            single = not (_is_video(s) or os.path.isdir(s) or is_glob)
        return out[0] if single else out

    def predict(self, source: Union[Source, Sequence[Source]], *, stream: bool = False,
                channels: Optional[str] = None, bgr: Optional[bool] = None) -> Union[List[Results], Iterator[Results]]:
        """Detections for every image in `source`:

        - a NumPy uint8 array (H, W, 3|4) or (H, W), any strides, read in
          place; its channel order by ``channels`` ("rgb", default; "bgr",
          "rgba", "bgra") or ``bgr=True`` (what cv2.imread returns);
        - a path to an image, a directory (recursive, name order) or a glob;
        - encoded image bytes (JPEG, PNG, BMP);
        - a video file, URL (rtsp/http/udp...) or /dev/videoN: frames run
          through the C++ video pipeline;
        - a list of any of these (arrays and files are batched by ``batch``;
          consecutive videos run as the streams of one pipeline, their
          frames interleaved as they are ready: ``r.path`` / ``r.stream``
          say which video, ``r.frame_index`` which frame).

        stream=False returns a list; stream=True a generator that yields each
        result as it is ready (use it for video: a list keeps every frame).
        """
        it = self._iter(source, _channels(channels, bgr))
        return it if stream else list(it)

    # -- the work ------------------------------------------------------------

    def _iter(self, source: Any, ch: str) -> Iterator[Results]:
        items = list(source) if isinstance(source, (list, tuple)) else [source]
        # Consecutive arrays go to C++ together (one batched call), the same
        # for consecutive image files; consecutive videos run as the streams
        # of one C++ Pipeline (frames of several streams share inferences).
        group: List[Any] = []
        kind = None
        for item in items:
            k, payload = self._classify(item)
            if k != kind:
                yield from self._flush(kind, group, ch)
                group, kind = [], k
            if k == "video":
                group.append(payload)
            else:
                group.extend(payload)
        yield from self._flush(kind, group, ch)

    def _classify(self, item: Any):
        if isinstance(item, np.ndarray):
            return "array", [item]
        if isinstance(item, (bytes, bytearray, memoryview)):
            return "bytes", [bytes(item)]
        if isinstance(item, (str, os.PathLike)):
            s = os.fspath(item)
            if _is_video(s):
                return "video", s
            return "file", _expand(s)
        raise InvalidArgumentError(f"cannot detect on a {type(item).__name__}: pass a NumPy uint8 array, a path, "
                                   "encoded image bytes or a list of these")

    def _flush(self, kind: Optional[str], group: List[Any], ch: str) -> Iterator[Results]:
        if not group:
            return
        if kind == "video":
            yield from self._video(group)
            return
        if kind == "array":
            for a in group:
                if a.dtype != np.uint8:
                    raise InvalidArgumentError(f"image arrays must be uint8, got {a.dtype} (scale and convert first)")
            raws = self._core.detect_arrays(group, ch)
            for a, raw in zip(group, raws):
                yield Results(raw, self.names, orig_img=a, channels=ch)
            return
        # Files and bytes are decoded in C++, a batch at a time so that a
        # directory of thousands is never all in memory.
        step = max(1, self.batch)
        for i in range(0, len(group), step):
            chunk = group[i:i + step]
            raws = (self._core.detect_encoded(chunk, [], True) if kind == "file"
                    else self._core.detect_encoded([], chunk, True))
            for raw in raws:
                yield Results(raw, self.names)

    def _video(self, locations: List[str]) -> Iterator[Results]:
        # FFmpeg is loaded only now (see python/CMakeLists.txt), and stays
        # loaded in this process from then on.
        from . import _video
        o = self._options
        vs = _video.VideoStream(locations, self.model, o["conf"], o["iou"], o["max_det"], self._classes_ids,
                                o["threads"], o["precision"], o["batch"], True, 4)
        try:
            for raw in vs:
                yield Results(raw, self.names)
        finally:
            vs.close()


class Session:
    """Any supported ONNX model: run(dict of arrays) -> dict of arrays.

    inputs / outputs: lists of (name, dtype, dims). Inputs are read in place
    when C-contiguous; outputs are NumPy arrays over the library's tensors.
    run() may be called from several threads at once.
    """

    def __init__(self, model: Union[str, os.PathLike], threads: Optional[int] = None, precision: str = "fp32",
                 engine: str = "auto", batch: int = 0):
        self.model = os.fspath(model)
        self._core = _core.Session(self.model, _threads(threads), precision, engine, int(batch))

    @property
    def inputs(self) -> list:
        return list(self._core.inputs)

    @property
    def outputs(self) -> list:
        return list(self._core.outputs)

    @property
    def metadata(self) -> dict:
        return dict(self._core.metadata)

    @property
    def engine(self) -> str:
        return self._core.engine

    def run(self, feeds: dict) -> dict:
        arrays = {}
        for name, a in feeds.items():
            if not isinstance(a, np.ndarray):
                a = np.asarray(a)
            arrays[name] = np.ascontiguousarray(a)  # no copy when already contiguous
        return dict(self._core.run(arrays))

    def __repr__(self) -> str:
        return f"<damoyolo.Session {self.model!r} inputs={self.inputs} outputs={self.outputs}>"


def decode_image(source: Union[str, os.PathLike, bytes], exif_rotate: bool = True) -> np.ndarray:
    """Decodes a JPEG/PNG/BMP file or its bytes to an (H, W, 3) RGB uint8 array."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _core.decode_bytes(bytes(source), exif_rotate)
    return _core.decode(os.fspath(source), exif_rotate)
