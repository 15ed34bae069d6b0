"""python -m damoyolo detect IMAGE... -m MODEL: the CLI's detect, through the bindings.

Prints what `damoyolo detect --no-draw` prints (one line per image, --top K
table) with the same defaults for people (conf 0.25, 300 boxes; --official for
the model family's thresholds and 500), and writes the same --json / --jsonl
records. Drawing and video output are the C++ CLI's (docs/python.md, Missing).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from . import Detector, Error, Results


def _table(r: Results, k: int) -> List[str]:
    n = min(k, len(r))
    if n == 0:
        return ["  (no detections)"]
    lines = ["     #  class            score       x1       y1       x2       y2"]
    for i, (b, s, name) in enumerate(zip(r.xyxy.tolist(), r.confidence.tolist(), r.class_name)):
        if i >= n:
            break
        lines.append(f"  {i + 1:4d}  {name:<15s}{s:7.4f}{b[0]:9.1f}{b[1]:9.1f}{b[2]:9.1f}{b[3]:9.1f}")
    return lines


def _detect(a: argparse.Namespace) -> int:
    conf = a.conf if a.conf is not None else (None if a.official else 0.25)
    max_det = a.max_det if a.max_det is not None else (500 if a.official else 300)
    classes = None
    if a.classes:
        classes = [int(c) if c.isdigit() else c for c in a.classes.split(",")]
    det = Detector(a.model, conf=conf, iou=a.iou, max_det=max_det, classes=classes, threads=a.threads,
                   precision=a.precision, batch=a.batch)
    records, failed, total = [], 0, 0
    jsonl = open(a.jsonl, "w") if a.jsonl else None
    try:
        for src in a.inputs:
            try:
                for r in det.predict(src, stream=True):
                    total += 1
                    rec = r.to_dict(a.full_precision)
                    records.append(rec)
                    if jsonl:
                        jsonl.write(json.dumps(rec) + "\n")
                    if a.quiet:
                        continue
                    line = f"{r.path}: {r.orig_shape[1]}x{r.orig_shape[0]}, {len(r)} detections"
                    if len(r) and a.top <= 0:
                        line += f", best {r.class_name[0]} {r.confidence[0]:.4f}"
                    print(f"{line}, {r.timings['total']:.1f} ms")
                    if a.top > 0:
                        print("\n".join(_table(r, a.top)))
            except Error as e:
                failed += 1
                print(f"python -m damoyolo detect: {e}", file=sys.stderr)
    finally:
        if jsonl:
            jsonl.close()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=2)
            f.write("\n")
    n = sum(len(r["detections"]) for r in records)
    print(f"{total} image(s) processed, {n} detections, {failed} failed")
    return 1 if failed else 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m damoyolo", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("detect", help="detect objects in images, directories, globs or videos")
    d.add_argument("inputs", nargs="+")
    d.add_argument("-m", "--model", required=True)
    d.add_argument("--conf", type=float)
    d.add_argument("--iou", type=float)
    d.add_argument("--max-det", type=int)
    d.add_argument("--official", action="store_true", help="the model family's thresholds and 500 boxes")
    d.add_argument("--classes", help="keep only these: comma list of ids or names")
    d.add_argument("--threads", type=int)
    d.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    d.add_argument("--batch", type=int, default=1)
    d.add_argument("--top", type=int, default=0, help="print the top K detections of each image")
    d.add_argument("--json", help="write all results as one JSON array")
    d.add_argument("--jsonl", help="write one JSON object per image per line")
    d.add_argument("--full-precision", action="store_true", help="JSON floats unrounded")
    d.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    try:
        return _detect(a)
    except (Error, ValueError, OSError) as e:
        print(f"python -m damoyolo {a.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
