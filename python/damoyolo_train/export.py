"""Export a DamoYolo model to ONNX with the official conventions (facts doc §3): opset 11, input `images`
[1,3,S,S] float RGB 0-255, RepConv in deploy form, SiLU as x*sigmoid(x), static shapes, batch 1.

  default form : outputs `output` scores [1,A,C] (sigmoid) and `boxes` [1,A,4] xyxy input pixels
  --benchmark  : six outputs cls_s8, cls_s16, cls_s32 (sigmoid), reg_s8, reg_s16, reg_s32 (raw bin logits)

Usage: /usr/bin/python3 -m damoyolo_train.export --ckpt CKPT --out DIR [--name NAME]
       /usr/bin/python3 -m damoyolo_train.export --benchmark-from DEFAULT.onnx --out DIR [--name NAME]

The second form derives the `--benchmark` six-output model from a default-form export without the checkpoint:
the six maps are intermediate tensors of the default graph (the Sigmoid after each gfl_cls conv and the Scale
Mul after each gfl_reg conv), so cutting the graph there gives the same network and weights with the same op
multiset as a direct `--benchmark` export (only the three head Sigmoids sit beside their Conv instead of last). That is how the bundled model's six-output form is obtained: committing both forms would not fit
the 10 MB budget for models/.
"""
import argparse
import copy
import json
import os
import warnings

import torch

from .model import build_model


def export_onnx(model, path, benchmark=False, batch=1):
    m = copy.deepcopy(model).cpu().eval().to(memory_format=torch.contiguous_format)
    m.deploy()
    m.mode = 'benchmark' if benchmark else 'export'
    dummy = torch.zeros(batch, 3, m.img_size, m.img_size)
    if benchmark:
        names = ['output'] + [f'cls_s{s}' for s in (16, 32)] + [f'reg_s{s}' for s in (8, 16, 32)]
    else:
        # Upstream names only the first output and the second gets an auto id (issue #60); consumers bind by
        # index. We name it 'boxes' for readability - index binding still works.
        names = ['output', 'boxes']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with torch.no_grad():
            torch.onnx.export(m, dummy, path, opset_version=11, input_names=['images'], output_names=names,
                              do_constant_folding=True)
    return path


def set_class_names(path, class_names):
    """Write the class names into the model file's metadata ("names", a JSON list), where damoyolo and other
    detector runtimes read them, so the labels travel with the model."""
    import onnx
    m = onnx.load(path)
    for p in list(m.metadata_props):
        if p.key == 'names':
            m.metadata_props.remove(p)
    # ensure_ascii=False: UTF-8 as it is (damoyolo also reads the \\u escapes, surrogate pairs included).
    m.metadata_props.add(key='names', value=json.dumps(list(class_names), ensure_ascii=False))
    onnx.save(m, path)
    return path


def class_names_of(model):
    """The "names" metadata of a loaded ONNX model (JSON, or the Python literal other exporters write), or None."""
    import ast
    for p in model.metadata_props:
        if p.key == 'names':
            try:
                v = json.loads(p.value)
            except ValueError:
                v = ast.literal_eval(p.value)
            return [v[k] for k in sorted(v, key=int)] if isinstance(v, dict) else list(v)
    return None


BENCHMARK_NAMES = ['output', 'cls_s16', 'cls_s32', 'reg_s8', 'reg_s16', 'reg_s32']


def benchmark_from_default(src, dst):
    """Write the six-output (--benchmark) form of the default-form export `src` to `dst`.

    Head tensors are found by structure, not by exporter-generated names: for level i, the Conv whose weight
    initializer is head.gfl_cls.{i}.weight feeds a Sigmoid (the class map), and the Conv on
    head.gfl_reg.{i}.weight feeds a Mul by head.scales.{i}.scale (the bin-logit map)."""
    import onnx
    import onnx.utils

    model = onnx.load(src)
    g = model.graph
    consumers = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)

    def head_map(weight, op):
        conv = [n for n in g.node if n.op_type == 'Conv' and len(n.input) > 1 and n.input[1] == weight]
        if len(conv) != 1:
            raise ValueError(f'{src}: expected one Conv on {weight}, found {len(conv)}')
        nxt = [n for n in consumers.get(conv[0].output[0], []) if n.op_type == op]
        if len(nxt) != 1:
            raise ValueError(f'{src}: the Conv on {weight} does not feed exactly one {op}')
        return nxt[0].output[0]

    levels = range(3)
    outs = [head_map(f'head.gfl_cls.{i}.weight', 'Sigmoid') for i in levels] + \
           [head_map(f'head.gfl_reg.{i}.weight', 'Mul') for i in levels]
    sub = onnx.utils.Extractor(model).extract_model([g.input[0].name], outs)
    rename = dict(zip(outs, BENCHMARK_NAMES))
    for n in sub.graph.node:
        for k, t in enumerate(n.output):
            if t in rename:
                n.output[k] = rename[t]
        for k, t in enumerate(n.input):
            if t in rename:
                n.input[k] = rename[t]
    for o in sub.graph.output:
        o.name = rename[o.name]
    sub.graph.name = g.name or 'damoyolo_benchmark'
    # The extractor ran shape inference and left every intermediate shape in value_info; the outputs keep
    # theirs. Drop the rest, as torch's own export has none.
    del sub.graph.value_info[:]
    names = class_names_of(model)
    if names is not None:
        sub.metadata_props.add(key='names', value=json.dumps(names))
    onnx.checker.check_model(sub)
    onnx.save(sub, dst)
    return dst


def load_checkpoint(path):
    ck = torch.load(path, map_location='cpu')
    model = build_model(ck['arch'], ck['num_classes'], ck['img_size'])
    state = ck.get('ema') or ck['model']
    model.load_state_dict(state)
    return model, ck


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument('--ckpt', help='training checkpoint: export both forms and the labels')
    src.add_argument('--benchmark-from', metavar='ONNX', help='default-form export: derive the six-output form')
    ap.add_argument('--out', required=True, help='output directory')
    ap.add_argument('--name', default=None, help='base file name (default damoyolo_<arch>_synth_<size>)')
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.benchmark_from:
        base = args.name or os.path.splitext(os.path.basename(args.benchmark_from))[0]
        p = benchmark_from_default(args.benchmark_from, os.path.join(args.out, base + '_benchmark.onnx'))
        print(json.dumps({'onnx_benchmark': p}))
        return
    model, ck = load_checkpoint(args.ckpt)
    base = args.name or f"damoyolo_{ck['arch']}_synth_{ck['img_size']}"
    p1 = export_onnx(model, os.path.join(args.out, base + '.onnx'))
    p2 = export_onnx(model, os.path.join(args.out, base + '_benchmark.onnx'), benchmark=True)
    for p in (p1, p2):
        set_class_names(p, ck['class_names'])
    labels = os.path.join(args.out, base + '.labels.txt')
    with open(labels, 'w') as f:
        f.write('\n'.join(ck['class_names']) + '\n')
    print(json.dumps({'onnx': p1, 'onnx_benchmark': p2, 'labels': labels}))


if __name__ == '__main__':
    main()
