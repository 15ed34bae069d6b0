"""Smoke test of the training pipeline: a few iterations on tiny generated images, then the CLI end to end
(train 2 iterations -> evaluate -> checkpoint -> ONNX export of both forms + labels + model card).
Must finish in < 60 s on 2 cores.

Run: /usr/bin/python3 python/tests/test_smoke.py   (or: cd python && /usr/bin/python3 -m unittest tests.test_smoke)
"""
import math
import os
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402

from damoyolo_train import onnx_info, synth  # noqa: E402
from damoyolo_train.loss import DetectionLoss  # noqa: E402
from damoyolo_train.model import build_model  # noqa: E402
from damoyolo_train.train import main as train_main  # noqa: E402
from damoyolo_train.train import Prefetcher, make_batch  # noqa: E402

SIZE = 128


class SmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        torch.set_flush_denormal(True)

    def test_synth_deterministic(self):
        a_img, a_anns = synth.make_scene(5, 'smoke', 3)
        b_img, b_anns = synth.make_scene(5, 'smoke', 3)
        self.assertTrue((a_img == b_img).all())
        self.assertEqual(a_anns, b_anns)
        c_img, _ = synth.make_scene(5, 'val', 3)
        self.assertFalse(a_img.shape == c_img.shape and (a_img == c_img).all())  # splits differ
        for a in a_anns:
            x, y, w, h = a['bbox']
            self.assertTrue(0 <= x and 0 <= y and x + w <= a_img.shape[1] and y + h <= a_img.shape[0])
            self.assertTrue(1 <= a['category_id'] <= len(synth.CLASSES))

    def test_loss_decreases(self):
        torch.manual_seed(0)
        model = build_model('Ns', len(synth.CLASSES), SIZE).to(memory_format=torch.channels_last).train()
        crit = DetectionLoss(len(synth.CLASSES), model.head.reg_max, SIZE)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        x, targets = make_batch(0, 0, 4, SIZE, split='smoke')
        x = x.contiguous(memory_format=torch.channels_last)
        losses = []
        for _ in range(16):  # the same batch each step: the loss must go down when overfitting it
            loss, parts = crit(*model(x), targets)
            self.assertTrue(math.isfinite(loss.item()), parts)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print('smoke losses:', ' '.join(f'{v:.3f}' for v in losses))
        self.assertLess(sum(losses[-4:]) / 4, 0.9 * sum(losses[:4]) / 4)

    def test_prefetch_gives_the_inline_batches(self):
        """The worker process must hand over exactly the batches the loop would make itself, in order
        (training stays a pure function of the seed), including the denser --max-objects scenes."""
        pf = Prefetcher(seed=3, batch=2, size=SIZE, max_objects=18, depth=2)
        try:
            for k in range(3):
                x, t = pf.get()
                xr, tr = make_batch(3, 2 * k, 2, SIZE, max_objects=18)
                self.assertTrue(torch.equal(x, xr))
                for (b, lb), (br, lbr) in zip(t, tr):
                    self.assertTrue(torch.equal(b, br) and torch.equal(lb, lbr))
        finally:
            pf.close()
        self.assertFalse(pf.proc.is_alive())

    def test_cli_train_eval_export(self):
        tmp = tempfile.mkdtemp(prefix='damoyolo_smoke_')
        val = os.path.join(tmp, 'val')
        synth.write_split(val, 'val', 4, seed=1)
        out = os.path.join(tmp, 'run')
        train_main(['--img-size', str(SIZE), '--iters', '2', '--batch', '4', '--warmup', '1', '--val-dir', val,
                    '--out', out, '--export', '--log-every', '1'])
        base = os.path.join(out, f'damoyolo_Ns_synth_{SIZE}')
        A = sum((SIZE // s) ** 2 for s in (8, 16, 32))
        C = len(synth.CLASSES)
        ins, outs = onnx_info.io_shapes(onnx_info.load(base + '.onnx'))
        self.assertEqual(ins, [('images', [1, 3, SIZE, SIZE])])
        self.assertEqual([s for _, s in outs], [[1, A, C], [1, A, 4]])
        self.assertEqual(outs[0][0], 'output')
        _, outs = onnx_info.io_shapes(onnx_info.load(base + '_benchmark.onnx'))
        self.assertEqual([s for _, s in outs], [[1, C, SIZE // s, SIZE // s] for s in (8, 16, 32)] +
                         [[1, 32, SIZE // s, SIZE // s] for s in (8, 16, 32)])
        with open(base + '.labels.txt') as f:
            self.assertEqual(f.read().split(), synth.CLASSES)
        self.assertTrue(os.path.isfile(os.path.join(out, 'model_card.md')))
        self.assertTrue(os.path.isfile(os.path.join(out, 'checkpoint.pt')))


if __name__ == '__main__':
    t0 = time.time()
    prog = unittest.main(verbosity=2, exit=False)
    print(f'smoke tests: {time.time() - t0:.1f} s')
    sys.exit(not prog.result.wasSuccessful())
