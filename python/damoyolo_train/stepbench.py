"""Time one training step (forward, loss, backward, optimizer) of a model on a fixed generated batch.

The figures in docs/training.md ("CPU") come from here, on a quiet machine:

  cd python && /usr/bin/python3 -m damoyolo_train.stepbench --batch 16 --size 320             # default
  cd python && /usr/bin/python3 -m damoyolo_train.stepbench --batch 16 --size 320 --unfused-silu
  cd python && /usr/bin/python3 -m damoyolo_train.stepbench --batch 16 --size 320 --bf16

Prints the minimum over --steps steps after one warm-up step, in total and per phase.
"""
import argparse
import time

import torch

from . import ops
from .loss import DetectionLoss
from .model import build_model
from .train import make_batch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--arch', default='Ns', choices=('Ns', 'T'))
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--size', type=int, default=320)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--bf16', action='store_true', help='forward under torch.cpu.amp.autocast(bfloat16)')
    ap.add_argument('--unfused-silu', action='store_true', help='SiLU as x*sigmoid(x) (the exported form)')
    ap.add_argument('--nchw', action='store_true', help='contiguous NCHW instead of channels_last')
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    if args.unfused_silu:
        ops.SiLU.forward = lambda self, x: x * torch.sigmoid(x)
    fmt = torch.contiguous_format if args.nchw else torch.channels_last
    model = build_model(args.arch, 10, args.size).to(memory_format=fmt).train()
    crit = DetectionLoss(10, model.head.reg_max, args.size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, targets = make_batch(0, 0, args.batch, args.size)
    x = x.contiguous(memory_format=fmt)
    phases = {'forward': [], 'loss': [], 'backward': [], 'step': []}
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        if args.bf16:
            with torch.cpu.amp.autocast(dtype=torch.bfloat16):
                cls, reg = model(x)
            cls, reg = [c.float() for c in cls], [r.float() for r in reg]
        else:
            cls, reg = model(x)
        t1 = time.perf_counter()
        loss, _ = crit(cls, reg, targets)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t0)):
            phases[k].append(v)
    best = {k: min(v[1:]) for k, v in phases.items()}
    print(f"{args.arch} {args.size} batch {args.batch}{' bf16' if args.bf16 else ''}"
          f"{' unfused-silu' if args.unfused_silu else ''}{' nchw' if args.nchw else ''}: "
          f"step {best['step']:.3f} s (forward {best['forward']:.3f}, loss {best['loss']:.3f}, "
          f"backward {best['backward']:.3f}), {best['step'] / args.batch * 1000:.1f} ms per image")


if __name__ == '__main__':
    main()
