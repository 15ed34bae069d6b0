"""The bundled model's six-output (--benchmark) form, derived from the committed default form by
damoyolo_train.export --benchmark-from, must be the same detector: same outputs, same shapes, and through the
project's CLI the same detections on the bundled demo scene as the default form.

Run: /usr/bin/python3 python/tests/test_benchmark_form.py  (ctest sets DAMOYOLO_BIN to the built CLI)
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

import onnx  # noqa: E402

from damoyolo_train.export import BENCHMARK_NAMES, benchmark_from_default  # noqa: E402

MODELS = os.path.join(REPO, 'models')
DEFAULT = os.path.join(MODELS, 'damoyolo_demo.onnx')


class BenchmarkFormTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.path = benchmark_from_default(DEFAULT, os.path.join(cls.tmp.name, 'demo_benchmark.onnx'))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_structure(self):
        m = onnx.load(self.path)
        self.assertEqual(m.opset_import[0].version, 11)
        self.assertEqual([i.name for i in m.graph.input], ['images'])
        self.assertEqual([o.name for o in m.graph.output], BENCHMARK_NAMES)
        dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output]
        with open(os.path.join(MODELS, 'damoyolo_demo.labels.txt')) as f:
            nc = len([ln for ln in f if ln.strip()])
        # 320 input, strides 8/16/32; class maps C channels, bin-logit maps 4 * (reg_max 7 + 1) channels
        self.assertEqual(dims, [[1, nc, 40, 40], [1, nc, 20, 20], [1, nc, 10, 10],
                                [1, 32, 40, 40], [1, 32, 20, 20], [1, 32, 10, 10]])
        ops = [n.op_type for n in m.graph.node]
        full_ops = [n.op_type for n in onnx.load(DEFAULT).graph.node]
        for op in ('Conv', 'Sigmoid'):   # every conv, every SiLU's and the head's sigmoids are kept
            self.assertEqual(ops.count(op), full_ops.count(op), op)
        self.assertNotIn('Softmax', ops)      # the decode is gone: post-processing is the runtime's job
        self.assertNotIn('MatMul', ops)
        # Every weight of the default model's backbone and neck is kept, bit for bit.
        full = {t.name: t.raw_data for t in onnx.load(DEFAULT).graph.initializer}
        kept = list(m.graph.initializer)
        self.assertGreater(len(kept), 100)
        for t in kept:
            self.assertIn(t.name, full)
            self.assertEqual(t.raw_data, full[t.name], t.name)
        # ...and only the decode's constants are gone: every conv weight and bias is there.
        conv_inputs = {i for n in onnx.load(DEFAULT).graph.node if n.op_type == 'Conv' for i in n.input[1:]}
        self.assertTrue(conv_inputs & full.keys() <= {t.name for t in kept})

    def test_same_detections_as_default_form(self):
        binary = os.environ.get('DAMOYOLO_BIN', os.path.join(REPO, 'build', 'bin', 'damoyolo'))
        if not os.access(binary, os.X_OK):
            self.skipTest('damoyolo CLI not built (ctest always provides it)')
        results = []
        for model in (DEFAULT, self.path):
            out = os.path.join(self.tmp.name, os.path.basename(model) + '.json')
            # --official: the official thresholds (conf 0.03 for nano) and unrounded JSON; no --labels: both
            # forms carry the class names in their metadata.
            r = subprocess.run([binary, 'detect', '-m', model, '--official', '--full-precision', '--no-draw', '-q',
                                '--json', out, os.path.join(MODELS, 'demo.jpg')], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                results.append(json.load(f)[0]['detections'])
        a, b = results
        self.assertEqual(a[0]['class_name'], 'ring')  # names from the model's metadata, not class5
        self.assertGreater(len(a), 10)   # at the default conf 0.03 the trained model keeps many candidates
        self.assertEqual(len(a), len(b))
        for da, db in zip(a, b):
            self.assertEqual(da['class_id'], db['class_id'])
            self.assertEqual(da['class_name'], db['class_name'])
            self.assertAlmostEqual(da['score'], db['score'], delta=1e-5)
            for ka, kb in zip(da['box'], db['box']):
                self.assertAlmostEqual(ka, kb, delta=1e-2)


if __name__ == '__main__':
    unittest.main(verbosity=2)
