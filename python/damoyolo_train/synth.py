"""Procedural detection dataset: shapes and letter-like glyphs on textured backgrounds, COCO annotations.

Every image is a pure function of (seed, split, index), so the data never needs to be stored in git: the
train split is generated on the fly each epoch, the validation split is written once by the CLI:

  /usr/bin/python3 -m damoyolo_train.synth --out DIR --split val --count 500 --seed 1

which writes DIR/images/*.png and DIR/instances_val.json (bbox xywh in image pixels, area, iscrowd 0).
"""
import argparse
import json
import math
import os
import zlib

import cv2
import numpy as np

CLASSES = ['circle', 'square', 'triangle', 'star', 'cross', 'ring', 'arrow', 'hexagon', 'glyph_E', 'glyph_Z']
SPLIT_CODE = {'train': 0, 'val': 1, 'test': 2, 'smoke': 3}


def _regular(n, r=1.0, phase=-math.pi / 2):
    a = phase + np.arange(n) * 2 * math.pi / n
    return np.stack([np.cos(a) * r, np.sin(a) * r], 1)


def _rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _star(n=5, r_in=0.45):
    outer, inner = _regular(n, 1.0), _regular(n, r_in, -math.pi / 2 + math.pi / n)
    return np.stack([outer, inner], 1).reshape(-1, 2)


def shape_parts(cls_name, rng):
    """Unit-size shape as a list of (polygon, fill) parts: fill 1 paints, fill 0 cuts a hole.
    Coordinates lie roughly in [-1, 1]; the caller scales, stretches and rotates them."""
    if cls_name == 'circle':
        return [(_regular(48), 1)]
    if cls_name == 'square':
        return [(_rect(-1, -1, 1, 1), 1)]
    if cls_name == 'triangle':
        return [(_regular(3), 1)]
    if cls_name == 'star':
        return [(_star(5, rng.uniform(0.38, 0.5)), 1)]
    if cls_name == 'cross':
        w = rng.uniform(0.28, 0.4)
        return [(_rect(-w, -1, w, 1), 1), (_rect(-1, -w, 1, w), 1)]
    if cls_name == 'ring':
        return [(_regular(48), 1), (_regular(48, rng.uniform(0.45, 0.65)), 0)]
    if cls_name == 'arrow':
        t = rng.uniform(0.18, 0.3)
        return [(np.array([[-1, -t], [0.2, -t], [0.2, -0.6], [1, 0], [0.2, 0.6], [0.2, t], [-1, t]]), 1)]
    if cls_name == 'hexagon':
        return [(_regular(6, 1.0, 0), 1)]
    if cls_name == 'glyph_E':
        t = rng.uniform(0.3, 0.42)
        return [(_rect(-0.75, -1, -0.75 + t, 1), 1), (_rect(-0.75, -1, 0.75, -1 + t), 1),
                (_rect(-0.75, -t / 2, 0.55, t / 2), 1), (_rect(-0.75, 1 - t, 0.75, 1), 1)]
    if cls_name == 'glyph_Z':
        t = rng.uniform(0.3, 0.42)
        return [(_rect(-0.8, -1, 0.8, -1 + t), 1), (_rect(-0.8, 1 - t, 0.8, 1), 1),
                (np.array([[0.8 - 1.1 * t, -1 + t], [0.8, -1 + t], [-0.8 + 1.1 * t, 1 - t], [-0.8, 1 - t]]), 1)]
    raise KeyError(cls_name)


# ----------------------------------------------------------------------------------------------- backgrounds

def _smooth_noise(rng, h, w, octaves=4, base=4):
    """Perlin-ish value noise: random grids of growing resolution, bicubically upsampled and summed."""
    acc = np.zeros((h, w), np.float32)
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        g = base * 2 ** o
        grid = rng.random((g + 1, g + 1)).astype(np.float32)
        acc += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        tot += amp
        amp *= 0.5
    acc /= tot
    return (acc - acc.min()) / max(1e-6, acc.max() - acc.min())


def _rand_color(rng):
    return rng.integers(0, 256, 3).astype(np.float32)


def background(rng, h, w):
    kind = rng.integers(0, 4)
    if kind == 0:  # linear gradient between two colours
        c0, c1 = _rand_color(rng), _rand_color(rng)
        ang = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx * math.cos(ang) + yy * math.sin(ang))
        t = (t - t.min()) / max(1e-6, t.max() - t.min())
        img = c0 + t[..., None] * (c1 - c0)
    elif kind == 1:  # perlin-ish texture mapped between colours
        n1 = _smooth_noise(rng, h, w, octaves=int(rng.integers(2, 6)), base=int(rng.integers(2, 8)))
        c0, c1 = _rand_color(rng), _rand_color(rng)
        img = c0 + n1[..., None] * (c1 - c0)
    elif kind == 2:  # blurred random blobs (out-of-focus "photo" look)
        img = np.empty((h, w, 3), np.float32)
        img[:] = _rand_color(rng)
        for _ in range(int(rng.integers(8, 30))):
            c = tuple(float(v) for v in _rand_color(rng))
            cv2.ellipse(img, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                        (int(rng.integers(8, w // 2)), int(rng.integers(8, h // 2))), float(rng.uniform(0, 180)),
                        0, 360, c, -1)
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(6, 20)))
    else:  # "photographic": texture x blobs, plus soft rectangles and a vignette
        n1 = _smooth_noise(rng, h, w, octaves=5, base=int(rng.integers(3, 10)))
        img = np.empty((h, w, 3), np.float32)
        img[:] = _rand_color(rng)
        for _ in range(int(rng.integers(3, 10))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(20, w)), y0 + int(rng.integers(20, h))),
                          tuple(float(v) for v in _rand_color(rng)), -1)
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(2, 8)))
        img *= (0.6 + 0.8 * n1)[..., None]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2
        img *= (1 - rng.uniform(0, 0.5) * r)[..., None]
    return img


def _fill_texture(rng, h, w, color):
    """Object fill: solid (most), a two-colour gradient, or stripes, so colour alone is not the cue."""
    k = rng.random()
    if k < 0.65:
        return np.broadcast_to(color, (h, w, 3))
    c2 = np.clip(color + rng.normal(0, 60, 3), 0, 255)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if k < 0.85:
        t = (xx / max(1, w - 1)) if rng.random() < 0.5 else (yy / max(1, h - 1))
    else:
        period = rng.uniform(4, 10)
        t = (np.sin((xx + yy * rng.uniform(-1, 1)) * 2 * math.pi / period) > 0).astype(np.float32)
    return color + t[..., None] * (c2 - color)


def _distractor(rng, img, h, w, thin=False):
    c = tuple(float(v) for v in _rand_color(rng))
    k = rng.integers(0, 3)
    if k == 0 or thin:  # thin line / polyline
        pts = np.stack([rng.integers(0, w, 4), rng.integers(0, h, 4)], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, c, int(rng.integers(1, 3)), cv2.LINE_AA)
    elif k == 1:  # small dot
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(1, 4)), c, -1,
                   cv2.LINE_AA)
    else:  # arc (curved stroke, never a closed ring)
        cv2.ellipse(img, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                    (int(rng.integers(5, 40)), int(rng.integers(5, 40))), float(rng.uniform(0, 180)), 0,
                    float(rng.uniform(40, 200)), c, int(rng.integers(1, 3)), cv2.LINE_AA)


# ------------------------------------------------------------------------------------------------- scenes

def make_scene(seed, split, index, size_range=(288, 512), max_objects=12, min_frac=0.05, max_frac=0.45):
    """Return (uint8 RGB HxWx3 image, list of annotations {bbox:[x,y,w,h], category_id (1-based), ...})."""
    rng = np.random.default_rng([int(seed), SPLIT_CODE.get(split, zlib.crc32(split.encode())), int(index)])
    w = int(rng.integers(size_range[0], size_range[1] + 1))
    h = int(rng.integers(size_range[0], size_range[1] + 1))
    img = background(rng, h, w)
    for _ in range(int(rng.integers(0, 12))):
        _distractor(rng, img, h, w)
    owner = np.full((h, w), -1, np.int16)   # which object is visible at each pixel
    full_area = []
    anns = []
    n_obj = int(rng.integers(1, max_objects + 1))
    short = min(h, w)
    for _ in range(n_obj):
        cls = int(rng.integers(0, len(CLASSES)))
        parts = shape_parts(CLASSES[cls], rng)
        for _try in range(20):
            size = short * math.exp(rng.uniform(math.log(min_frac), math.log(max_frac)))
            aspect = math.exp(rng.uniform(-0.5, 0.5))
            sx, sy = size / 2 * math.sqrt(aspect), size / 2 / math.sqrt(aspect)
            th = rng.uniform(0, 2 * math.pi)
            rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
            polys = [((p * [sx, sy]) @ rot.T, f) for p, f in parts]
            allp = np.concatenate([p for p, f in polys if f])
            lo, hi = allp.min(0), allp.max(0)
            ext = hi - lo
            if ext[0] >= w - 4 or ext[1] >= h - 4:
                continue
            cx = rng.uniform(2 - lo[0], w - 2 - hi[0])
            cy = rng.uniform(2 - lo[1], h - 2 - hi[1])
            x0, y0 = int(math.floor(cx + lo[0])) - 1, int(math.floor(cy + lo[1])) - 1
            x1, y1 = int(math.ceil(cx + hi[0])) + 2, int(math.ceil(cy + hi[1])) + 2
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
            for p, f in polys:  # shift=4: 1/16-pixel vertex precision, anti-aliased edges
                q = np.round((p + [cx - x0, cy - y0]) * 16).astype(np.int32)
                cv2.fillPoly(alpha, [q], 255 if f else 0, cv2.LINE_AA, shift=4)
            solid = alpha >= 128
            if solid.sum() < 20:
                continue
            # Partial occlusion is allowed, but every earlier object must keep >= 60% of its pixels visible,
            # so its amodal box is still a fair target.
            covered = owner[y0:y1, x0:x1][solid]
            ok = True
            if covered.size and (covered >= 0).any():
                ids, cnt = np.unique(covered[covered >= 0], return_counts=True)
                for i, c in zip(ids, cnt):
                    if (owner == i).sum() - c < 0.6 * full_area[i]:
                        ok = False
                        break
            if ok:
                break
        else:
            continue
        if not ok:
            continue
        region = img[y0:y1, x0:x1]
        local = region.reshape(-1, 3).mean(0)
        for _c in range(10):  # keep the object distinguishable from what is under it
            color = _rand_color(rng)
            if np.abs(color - local).mean() > 60:
                break
        fill = _fill_texture(rng, y1 - y0, x1 - x0, color)
        a = (alpha.astype(np.float32) / 255.0)[..., None]
        region[:] = region * (1 - a) + fill * a
        if rng.random() < 0.25:  # dark or light outline
            oc = tuple(float(v) for v in (color * 0.4 if rng.random() < 0.5 else 255 - (255 - color) * 0.4))
            for p, f in polys:
                q = np.round((p + [cx, cy]) * 16).astype(np.int32)
                cv2.polylines(img, [q], True, oc, 1, cv2.LINE_AA, shift=4)
        idx = len(full_area)
        owner[y0:y1, x0:x1][solid] = idx
        full_area.append(int(solid.sum()))
        bx0, by0 = cx + lo[0], cy + lo[1]
        anns.append({'bbox': [float(bx0), float(by0), float(ext[0]), float(ext[1])], 'category_id': cls + 1,
                     'area': float(solid.sum()), 'iscrowd': 0})
    for _ in range(int(rng.integers(0, 4))):  # a few thin strokes on top: clutter that crosses objects
        _distractor(rng, img, h, w, thin=True)
    img += rng.normal(0, rng.uniform(0, 8), img.shape).astype(np.float32)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.0)))
    return np.clip(img, 0, 255).astype(np.uint8), anns


def categories():
    return [{'id': i + 1, 'name': n, 'supercategory': 'synthetic'} for i, n in enumerate(CLASSES)]


def write_split(out, split, count, seed, fmt='png'):
    img_dir = os.path.join(out, 'images')
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        img, anns = make_scene(seed, split, i)
        name = f'{split}_{i:06d}.{fmt}'
        cv2.imwrite(os.path.join(img_dir, name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == 'jpg' else [])
        images.append({'id': i + 1, 'file_name': name, 'height': img.shape[0], 'width': img.shape[1]})
        for a in anns:
            a = dict(a, id=len(annotations) + 1, image_id=i + 1)
            annotations.append(a)
    coco = {'info': {'description': f'damoyolo synthetic shapes, split={split} seed={seed}'},
            'images': images, 'annotations': annotations, 'categories': categories()}
    path = os.path.join(out, f'instances_{split}.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True)
    ap.add_argument('--split', default='val')
    ap.add_argument('--count', type=int, default=500)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--format', choices=('png', 'jpg'), default='png')
    args = ap.parse_args(argv)
    print(write_split(args.out, args.split, args.count, args.seed, args.format))


if __name__ == '__main__':
    main()
