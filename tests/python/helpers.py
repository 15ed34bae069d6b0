"""Comparison helpers shared by the tests."""

import numpy as np


def assert_same_detections(a, b, box_tol=0.0, score_tol=0.0):
    """Two Results (or Results-like) with the same detections, position by
    position; exact unless tolerances are given."""
    assert len(a) == len(b), f"{len(a)} != {len(b)} detections"
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=0, atol=box_tol)
    np.testing.assert_allclose(a.confidence, b.confidence, rtol=0, atol=score_tol)


def match_detections(ours, theirs, iou_min=0.99, score_tol=1e-4):
    """The fixtures' rule (fixtures README): every detection of `theirs` has
    one in `ours` of the same class, IoU >= iou_min and score within
    score_tol (near-equal scores may swap places)."""
    used = set()
    for tb, ts, tc in theirs:
        best = None
        for i, (ob, os_, oc) in enumerate(ours):
            if i in used or oc != tc or abs(os_ - ts) > score_tol:
                continue
            ix1, iy1 = max(ob[0], tb[0]), max(ob[1], tb[1])
            ix2, iy2 = min(ob[2], tb[2]), min(ob[3], tb[3])
            inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
            area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
            iou = inter / (area(ob) + area(tb) - inter)
            if iou >= iou_min:
                best = i
                break
        assert best is not None, f"no match for {tb} {ts} class {tc}"
        used.add(best)
