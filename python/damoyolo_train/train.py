"""Train a DAMO-YOLO-structured detector on the procedural dataset (damoyolo_train.synth), on the CPU.

Example (the full run, see docs/training.md):
  cd python && /usr/bin/python3 -m damoyolo_train.train --arch Ns --img-size 320 --batch 16 --lr 3e-3 \
      --warmup 100 --iters 100000 --time-budget 85 --max-objects 18 --seed 0 --val-dir /tmp/synth_val \
      --eval-every 500 --eval-quick 100 --log-every 20 --out runs/ns320b --export

Input convention = the runtime's inference preprocessing (facts doc §4): RGB uint8, stretched to SxS with
cv2.resize INTER_LINEAR, fed as float 0-255 with no normalisation.
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import cv2
import numpy as np
import torch

from . import synth
from .evaluate import coco_ap, postprocess
from .loss import DetectionLoss
from .model import build_model


def preprocess(img_rgb, size):
    """Stretch resize exactly like the official/runtime preprocessing; returns float CHW 0-255."""
    r = cv2.resize(img_rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(r).permute(2, 0, 1).float()


def color_jitter(img, rng):
    """Photometric jitter on uint8 RGB: brightness/contrast/per-channel gain, sometimes a channel swap or
    greyscale. No flips: mirrored glyphs (E, Z) and arrows would change meaning."""
    x = img.astype(np.float32)
    x = (x - x.mean()) * rng.uniform(0.7, 1.3) + x.mean() + rng.uniform(-30, 30)
    x *= rng.uniform(0.85, 1.15, 3)
    if rng.random() < 0.2:
        x = x[..., rng.permutation(3)]
    if rng.random() < 0.05:
        x[:] = x.mean(-1, keepdims=True)
    return np.clip(x, 0, 255).astype(np.uint8)


def make_batch_np(seed, start, batch, size, augment=True, split='train', max_objects=12):
    """One batch as numpy: uint8 images [N,S,S,3] (stretched, RGB) and per-image (xyxy boxes in input pixels,
    0-based labels). A pure function of its arguments, so a prefetching worker produces exactly the batches
    the training loop would have made itself."""
    imgs, targets = [], []
    for i in range(start, start + batch):
        img, anns = synth.make_scene(seed, split, i, max_objects=max_objects)
        h0, w0 = img.shape[:2]
        if augment:
            img = color_jitter(img, np.random.default_rng([seed, 99, i]))
        imgs.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR))
        b = np.array([a['bbox'] for a in anns], np.float32).reshape(-1, 4)
        b[:, 2:] += b[:, :2]
        b[:, [0, 2]] *= size / w0
        b[:, [1, 3]] *= size / h0
        targets.append((b, np.array([a['category_id'] - 1 for a in anns], np.int64)))
    return np.stack(imgs), targets


def to_tensors(imgs, targets):
    """NHWC uint8 -> float NCHW view in channels_last memory (no copy beyond the float conversion)."""
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    return x, [(torch.from_numpy(b), torch.from_numpy(l)) for b, l in targets]


def make_batch(seed, start, batch, size, augment=True, split='train', max_objects=12):
    return to_tensors(*make_batch_np(seed, start, batch, size, augment, split, max_objects))


def _prefetch_worker(queue, seed, first, step, size, max_objects):
    # One thread: the worker shares 2 cores with the training step; oversubscribing them costs more than
    # it gains.
    cv2.setNumThreads(1)
    start = first
    try:
        while True:
            queue.put((start, make_batch_np(seed, start, step, size, max_objects=max_objects)))
            start += step
    except Exception:  # hand the failure to the training loop instead of dying silently
        import traceback
        queue.put((start, traceback.format_exc()))


class Prefetcher:
    """Generates training batches in a separate process, at most `depth` ahead, so scene synthesis (about 20%
    of a step when done inline) partly overlaps the forward/backward pass: the first 41 steps of Ns at 320, batch 16, took 59 s
    against 61-66 s inline on the 2 cores (docs/training.md). Bounded queue: the worker blocks instead of
    piling batches up in memory."""

    def __init__(self, seed, batch, size, max_objects, depth=3):
        import multiprocessing as mp
        ctx = mp.get_context('fork')
        self.queue = ctx.Queue(maxsize=depth)
        self.proc = ctx.Process(target=_prefetch_worker, args=(self.queue, seed, 0, batch, size, max_objects),
                                daemon=True)
        self.proc.start()
        self.next_start, self.batch = 0, batch

    def get(self):
        import queue as q
        while True:
            try:
                start, data = self.queue.get(timeout=5)
                break
            except q.Empty:
                if not self.proc.is_alive():
                    raise RuntimeError(f'the batch worker died (exit code {self.proc.exitcode})') from None
        if isinstance(data, str):
            raise RuntimeError(f'the batch worker failed on batch {start}:\n{data}')
        if start != self.next_start:  # cannot happen with one ordered worker; guards determinism anyway
            raise RuntimeError(f'prefetch out of order: got batch {start}, expected {self.next_start}')
        self.next_start += self.batch
        return to_tensors(*data)

    def close(self):
        self.proc.terminate()
        self.proc.join()


class EMA:
    """Exponential moving average of weights; the decay ramps up (tau) so early noisy weights fade quickly."""

    def __init__(self, model, decay=0.998, tau=200):
        self.model = copy.deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


@torch.no_grad()
def evaluate(model, val_dir, size, limit=None, conf=0.03, iou=0.65, batch=16):
    """COCO-style AP of `model` on a split written by `synth --split val`."""
    with open(os.path.join(val_dir, 'instances_val.json')) as f:
        coco = json.load(f)
    images = coco['images'][:limit] if limit else coco['images']
    ids = {im['id'] for im in images}
    gts = [a for a in coco['annotations'] if a['image_id'] in ids]
    model.eval()
    loss_helper = DetectionLoss(model.num_classes, model.head.reg_max, size)
    dets = []
    for s in range(0, len(images), batch):
        chunk = images[s:s + batch]
        x = torch.stack([preprocess(cv2.cvtColor(cv2.imread(os.path.join(val_dir, 'images', im['file_name'])),
                                                 cv2.COLOR_BGR2RGB), size) for im in chunk])
        x = x.contiguous(memory_format=torch.channels_last)
        cls, reg = loss_helper.flatten(*model(x))
        boxes = loss_helper.decode(reg)
        scores = cls.sigmoid()
        for k, im in enumerate(chunk):
            b, sc, lb = postprocess(scores[k], boxes[k], conf, iou)
            b = b.clone()
            b[:, [0, 2]] *= im['width'] / size   # map back per axis, no clipping (facts §4.2)
            b[:, [1, 3]] *= im['height'] / size
            for bb, ss, ll in zip(b.tolist(), sc.tolist(), lb.tolist()):
                dets.append({'image_id': im['id'], 'category_id': ll + 1, 'score': ss,
                             'bbox': [bb[0], bb[1], bb[2] - bb[0], bb[3] - bb[1]]})
    res = coco_ap(gts, dets, [c['id'] for c in coco['categories']])
    res['images'] = len(images)
    return res


def param_groups(model, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on BN, biases and Scale
    return [{'params': decay, 'weight_decay': wd}, {'params': no_decay, 'weight_decay': 0.0}]


def lr_at(it, progress, base, warmup):
    """Linear warmup over `warmup` iterations, then cosine to 2% of base as `progress` goes 0 -> 1."""
    if it < warmup:
        return base * (0.01 + 0.99 * it / warmup)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def write_model_card(out, ck, metrics, args, wall):
    cmd = 'cd python && /usr/bin/python3 -m damoyolo_train.train ' + ' '.join(sys.argv[1:])
    lines = [
        f"# Model card: damoyolo_{ck['arch']}_synth_{ck['img_size']}", '',
        f"- Architecture: DAMO-YOLO-{ck['arch']} structure (damoyolo_train.model), num_classes={ck['num_classes']}",
        f"- Input: `images` [1,3,{ck['img_size']},{ck['img_size']}] float32 RGB 0-255; preprocessing = decode to "
        f"RGB uint8, cv2.resize INTER_LINEAR stretch to {ck['img_size']}x{ck['img_size']}, no normalisation",
        '- Outputs (default ONNX): scores [1,A,C] after sigmoid, boxes [1,A,4] xyxy input pixels; '
        '`_benchmark.onnx`: six raw head maps',
        '- Post-processing used for the metrics: conf 0.03, class-aware NMS IoU 0.65, max 500, per-axis map-back',
        f"- Classes (index: name): {', '.join(f'{i}: {n}' for i, n in enumerate(ck['class_names']))}",
        f"- Training data: damoyolo_train.synth, split 'train', seed {args.seed}, 1..{args.max_objects} objects per "
        f"scene, generated on the fly "
        f"({ck['iterations']} iterations x batch {args.batch})",
        f"- Command: `{cmd}`", f"- Wall time: {wall / 60:.1f} min on {args.threads} CPU threads", '',
        f"## Validation ({metrics.get('images')} images of {args.val_dir})", '',
        f"AP {metrics.get('AP', float('nan')):.3f}, AP50 {metrics.get('AP50', float('nan')):.3f}, "
        f"AP75 {metrics.get('AP75', float('nan')):.3f}", '',
        '| class | AP |', '|---|---|'] + [
        f"| {ck['class_names'][k - 1]} | {v:.3f} |" for k, v in metrics.get('per_category_AP', {}).items()]
    with open(os.path.join(out, 'model_card.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--arch', default='Ns', choices=('Ns', 'T'))
    ap.add_argument('--img-size', type=int, default=320)
    ap.add_argument('--iters', type=int, default=4000, help='optimizer steps (the LR schedule spans these)')
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--wd', type=float, default=0.05)
    ap.add_argument('--warmup', type=int, default=200)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--time-budget', type=float, default=0,
                    help='minutes of training; the LR schedule follows max(iteration/iters, elapsed/budget), so '
                         'a run on a slower or busier CPU still anneals fully and stops in time (then evaluates)')
    ap.add_argument('--val-dir', default=None, help='output of `synth --split val`')
    ap.add_argument('--val-limit', type=int, default=None, help='evaluate on the first N val images only')
    ap.add_argument('--eval-every', type=int, default=0, help='iterations between quick evals (0: only at end)')
    ap.add_argument('--eval-quick', type=int, default=100, help='val images used by the periodic evals')
    ap.add_argument('--log-every', type=int, default=10)
    ap.add_argument('--max-objects', type=int, default=12,
                    help='objects per training scene are drawn from 1..N (the validation split uses 12); more '
                         'objects per image = more positive anchors per unit of compute')
    ap.add_argument('--prefetch', type=int, default=1, choices=(0, 1),
                    help='1: synthesise batches in a worker process, overlapping the step (0: inline)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--export', action='store_true', help='export both ONNX forms + labels at the end')
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormal weights/grads can make CPU kernels many times slower
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    nc = len(synth.CLASSES)
    model = build_model(args.arch, nc, args.img_size)
    # channels_last: measured ~2x faster depthwise/pointwise backward on this CPU than NCHW
    model = model.to(memory_format=torch.channels_last)
    model.train()
    ema = EMA(model)
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(0.9, 0.999))
    crit = DetectionLoss(nc, model.head.reg_max, args.img_size)
    log = open(os.path.join(args.out, 'train_log.jsonl'), 'w')
    prefetch = Prefetcher(args.seed, args.batch, args.img_size, args.max_objects) if args.prefetch else None
    t0 = time.time()
    it = done = 0
    budget_s = args.time_budget * 60
    for it in range(args.iters):
        progress = max(it / args.iters, (time.time() - t0) / budget_s if budget_s else 0.0)
        if progress >= 1.0:
            print(f'time budget reached after {it} iterations', flush=True)
            break
        lr = lr_at(it, progress, args.lr, args.warmup)
        for g in opt.param_groups:
            g['lr'] = lr
        td = time.time()
        if prefetch:
            x, targets = prefetch.get()
        else:
            x, targets = make_batch(args.seed, it * args.batch, args.batch, args.img_size,
                                    max_objects=args.max_objects)
        x = x.contiguous(memory_format=torch.channels_last)
        td = time.time() - td
        cls_out, reg_out = model(x)
        loss, parts = crit(cls_out, reg_out, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f'non-finite loss at iteration {it}: {parts}')
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        ema.update(model)
        done += 1
        rec = {'it': it, 'loss': loss.item(), **parts, 'lr': lr, 'progress': progress, 't': time.time() - t0, 'data_s': td}
        log.write(json.dumps(rec) + '\n')
        if it % args.log_every == 0 or it == args.iters - 1:
            print(f"it {it:5d} loss {rec['loss']:.4f} qfl {parts['qfl']:.4f} giou {parts['giou']:.4f} "
                  f"dfl {parts['dfl']:.4f} pos/img {parts['pos']:.1f} lr {lr:.2e} t {rec['t']:.0f}s", flush=True)
        if args.eval_every and args.val_dir and (it + 1) % args.eval_every == 0:
            m = evaluate(ema.model, args.val_dir, args.img_size, args.eval_quick)
            log.write(json.dumps({'it': it, 'eval': {k: m[k] for k in ('AP', 'AP50', 'AP75', 'images')}}) + '\n')
            print(f"eval it {it}: AP {m['AP']:.3f} AP50 {m['AP50']:.3f} AP75 {m['AP75']:.3f} "
                  f"({m['images']} imgs)", flush=True)
            model.train()
        log.flush()
    wall = time.time() - t0
    if prefetch:
        prefetch.close()
    metrics = {}
    if args.val_dir:
        metrics = evaluate(ema.model, args.val_dir, args.img_size, args.val_limit)
        print(f"final eval: AP {metrics['AP']:.3f} AP50 {metrics['AP50']:.3f} AP75 {metrics['AP75']:.3f} "
              f"({metrics['images']} imgs)", flush=True)
        log.write(json.dumps({'it': it, 'final_eval': metrics}) + '\n')
    log.close()
    ck = {'arch': args.arch, 'num_classes': nc, 'img_size': args.img_size, 'class_names': synth.CLASSES,
          'model': model.state_dict(), 'ema': ema.model.state_dict(), 'args': vars(args), 'metrics': metrics,
          'iterations': done, 'wall_s': wall}
    ck_path = os.path.join(args.out, 'checkpoint.pt')
    torch.save(ck, ck_path)
    write_model_card(args.out, ck, metrics, args, wall)
    if args.export:
        from .export import main as export_main
        export_main(['--ckpt', ck_path, '--out', args.out])
    print(json.dumps({'checkpoint': ck_path, 'iterations': done, 'wall_min': round(wall / 60, 2),
                      **{k: metrics[k] for k in ('AP', 'AP50', 'AP75') if k in metrics}}))


if __name__ == '__main__':
    main()
