"""Architecture check: the T and Ns configurations built by damoyolo_train, with random weights, exported
with the official conventions, compared with the fixture ONNX files.

Run: cd python && /usr/bin/python3 -m unittest tests.test_architecture -v
 (or /usr/bin/python3 python/tests/test_architecture.py from anywhere)
Fixture directory: $DAMOYOLO_FIXTURES or ../shared/fixtures/models (relative to the repo root) or
/work/shared/fixtures/models.
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
REPO = os.path.dirname(os.path.dirname(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from damoyolo_train import onnx_info  # noqa: E402
from damoyolo_train.export import export_onnx  # noqa: E402
from damoyolo_train.head import make_priors  # noqa: E402
from damoyolo_train.model import build_model  # noqa: E402


def fixture_dir():
    for d in (os.environ.get('DAMOYOLO_FIXTURES'), os.path.join(REPO, '..', 'shared', 'fixtures', 'models'),
              '/work/shared/fixtures/models'):
        if d and os.path.isfile(os.path.join(d, 'damoyolo_Ns_416.onnx')):
            return d
    return None


FIX = fixture_dir()
ALLOWED_OPS = {'Conv', 'Relu', 'Sigmoid', 'Mul', 'Add', 'Sub', 'Concat', 'Slice', 'MaxPool', 'Resize', 'Reshape',
               'Transpose', 'Softmax', 'MatMul', 'Gather', 'Unsqueeze', 'Constant', 'Identity', 'Shape', 'Cast'}


def randomize_bn(model, seed=0):
    """Non-trivial BN statistics, so BN folding and RepConv fusion are actually exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


class ArchitectureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.tmp = tempfile.mkdtemp(prefix='damoyolo_arch_')
        cls.models = {}
        for name in ('T', 'Ns'):
            m = randomize_bn(build_model(name, 80)).eval()
            cls.models[name] = m
            export_onnx(m, os.path.join(cls.tmp, f'{name}.onnx'))
            export_onnx(m, os.path.join(cls.tmp, f'{name}_benchmark.onnx'), benchmark=True)

    def mine(self, name):
        return onnx_info.load(os.path.join(self.tmp, name + '.onnx'))

    @unittest.skipUnless(FIX, 'fixtures not found')
    def test_ns_conv_sequence_graph_order(self):
        # The Ns fixture is unsimplified, so its node list is torch's trace order: ours must match exactly.
        ref = onnx_info.conv_signatures(onnx_info.load(os.path.join(FIX, 'damoyolo_Ns_416.onnx')))
        got = onnx_info.conv_signatures(self.mine('Ns'))
        self.assertEqual(len(got), len(ref))
        for i, (a, b) in enumerate(zip(got, ref)):
            self.assertEqual(a, b, f'conv #{i}')

    @unittest.skipUnless(FIX, 'fixtures not found')
    def test_ns_benchmark_conv_sequence(self):
        ref = onnx_info.conv_canonical(onnx_info.load(os.path.join(FIX, 'damoyolo_Ns_416_benchmark.onnx')))
        self.assertEqual(onnx_info.conv_canonical(self.mine('Ns_benchmark')), ref)

    @unittest.skipUnless(FIX, 'fixtures not found')
    def test_t_conv_sequence(self):
        ref_model = onnx_info.load(os.path.join(FIX, 'damoyolo_T_640.onnx'))
        ref, got = onnx_info.conv_signatures(ref_model), onnx_info.conv_signatures(self.mine('T'))
        self.assertEqual(len(got), len(ref))
        # The T fixture went through onnxsim, which reorders nodes (e.g. neck down-convs are hoisted into the
        # backbone) and fuses the level-0 Scale Mul into gfl_reg.0: graph order cannot match a plain torch
        # export. Same multiset of Conv signatures, and the same data-flow (canonical) order:
        self.assertEqual(sorted(map(repr, got)), sorted(map(repr, ref)))
        self.assertEqual(onnx_info.conv_canonical(self.mine('T')), onnx_info.conv_canonical(ref_model))

    @unittest.skipUnless(FIX, 'fixtures not found')
    def test_output_shapes(self):
        for mine, fix in (('T', 'damoyolo_T_640'), ('Ns', 'damoyolo_Ns_416'),
                          ('Ns_benchmark', 'damoyolo_Ns_416_benchmark')):
            ins_r, outs_r = onnx_info.io_shapes(onnx_info.load(os.path.join(FIX, fix + '.onnx')))
            ins_g, outs_g = onnx_info.io_shapes(self.mine(mine))
            self.assertEqual(ins_g, ins_r, mine)
            self.assertEqual([s for _, s in outs_g], [s for _, s in outs_r], mine)
            self.assertEqual(outs_g[0][0], 'output')  # later output names are auto ids upstream; bind by index

    def test_op_inventory(self):
        for name in ('T', 'Ns', 'Ns_benchmark', 'T_benchmark'):
            ops = set(onnx_info.op_histogram(self.mine(name)))
            self.assertTrue(ops <= ALLOWED_OPS, f'{name}: unexpected ops {ops - ALLOWED_OPS}')
            self.assertNotIn('BatchNormalization', ops)
        self.assertIn('Softmax', onnx_info.op_histogram(self.mine('Ns')))
        self.assertIn('MatMul', onnx_info.op_histogram(self.mine('Ns')))

    def test_repconv_fusion(self):
        m = self.models['T']
        x = torch.rand(1, 3, 128, 128) * 255
        import copy
        d = copy.deepcopy(m).eval()
        with torch.no_grad():
            a_cls, a_reg = m(x)
            d.deploy()
            b_cls, b_reg = d(x)
        for a, b in zip(a_cls + a_reg, b_cls + b_reg):
            self.assertLess((a - b).abs().max().item() / max(1.0, a.abs().max().item()), 1e-4)

    def test_decode_consistency(self):
        # The two-output decode must equal a decode of the six benchmark outputs done by hand with the
        # facts-doc formulas (softmax over bins, expectation, x stride, corners around (j*s, i*s)).
        m = self.models['Ns']
        x = torch.rand(1, 3, 416, 416) * 255
        with torch.no_grad():
            m.mode = 'export'
            scores, boxes = m(x)
            m.mode = 'benchmark'
            raw = m(x)
            m.mode = 'train'
        R = m.head.reg_max
        pts, strd = make_priors(416, (8, 16, 32))
        cls = torch.cat([c.flatten(2).transpose(1, 2) for c in raw[:3]], 1)
        reg = torch.cat([r.flatten(2).transpose(1, 2) for r in raw[3:]], 1).reshape(1, -1, 4, R + 1)
        d = (reg.softmax(-1) * torch.arange(R + 1.0)).sum(-1) * strd[None, :, None]
        ref = torch.stack([pts[:, 0] - d[0, :, 0], pts[:, 1] - d[0, :, 1], pts[:, 0] + d[0, :, 2],
                           pts[:, 1] + d[0, :, 3]], -1)[None]
        self.assertEqual(tuple(scores.shape), (1, 3549, 80))
        self.assertLess((scores - cls).abs().max().item(), 1e-6)
        self.assertLess((boxes - ref).abs().max().item(), 1e-3)

    def test_cpp_runtime_matches_torch(self):
        """Optional: if the project's CLI is built, its output on our exported Ns must match torch."""
        binary = os.environ.get('DAMOYOLO_BIN', os.path.join(REPO, 'build', 'bin', 'damoyolo'))
        if not os.access(binary, os.X_OK):
            self.skipTest('damoyolo CLI not built')
        m = self.models['Ns']
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (1, 3, 416, 416)).astype(np.float32)
        inp = os.path.join(self.tmp, 'in.f32')
        x.tofile(inp)
        out = os.path.join(self.tmp, 'run')
        r = subprocess.run([binary, 'run', os.path.join(self.tmp, 'Ns.onnx'), '--input', inp, '--output-dir', out],
                           capture_output=True, text=True)
        # The CLI is there, so a failure of it is a failure of this test (a skip hid a renamed option once).
        self.assertEqual(r.returncode, 0, r.stderr[-300:])
        with torch.no_grad():
            m.mode = 'export'
            scores, boxes = m(torch.from_numpy(x))
            m.mode = 'train'
        s = np.fromfile(os.path.join(out, 'out0.f32'), np.float32).reshape(scores.shape)
        b = np.fromfile(os.path.join(out, 'out1.f32'), np.float32).reshape(boxes.shape)
        self.assertLess(np.abs(s - scores.numpy()).max(), 1e-4)
        self.assertLess(np.abs(b - boxes.numpy()).max(), 0.05)


if __name__ == '__main__':
    unittest.main(verbosity=2)
