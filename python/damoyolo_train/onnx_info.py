"""Small helpers to read ONNX graphs without onnx.load (Debian's python3-onnx build may lack it)."""
import onnx
from onnx import helper, numpy_helper


def load(path):
    m = onnx.ModelProto()
    with open(path, 'rb') as f:
        m.ParseFromString(f.read())
    return m


def io_shapes(model):
    def dims(v):
        return [d.dim_value for d in v.type.tensor_type.shape.dim]
    inits = {i.name for i in model.graph.initializer}
    ins = [(v.name, dims(v)) for v in model.graph.input if v.name not in inits]
    outs = [(v.name, dims(v)) for v in model.graph.output]
    return ins, outs


def conv_signatures(model):
    """[(weight shape, strides, group, pads)] for every Conv, in graph order. Weights reached through
    Identity nodes (torch dedups equal initializers that way) are resolved."""
    g = model.graph
    shapes = {i.name: tuple(i.dims) for i in g.initializer}
    alias = {n.output[0]: n.input[0] for n in g.node if n.op_type == 'Identity'}
    for n in g.node:
        if n.op_type == 'Constant':
            for a in n.attribute:
                if a.name == 'value':
                    shapes[n.output[0]] = tuple(a.t.dims)

    def resolve(name):
        while name in alias:
            name = alias[name]
        return name
    sigs = []
    for n in g.node:
        if n.op_type != 'Conv':
            continue
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        sigs.append((shapes.get(resolve(n.input[1])), tuple(a.get('strides', [1, 1])), a.get('group', 1),
                     tuple(a.get('pads', [0, 0, 0, 0]))))
    return sigs


def conv_canonical(model):
    """Conv signatures sorted by (conv depth, signature), where conv depth is the largest number of Conv
    nodes on any path from the input. This order depends only on the data flow, not on how a tool
    (e.g. onnxsim) happened to order the node list, so two graphs of the same network agree on it."""
    g = model.graph
    sigs = iter(conv_signatures(model))
    producer_depth = {}
    result = []
    for n in g.node:  # ONNX node lists are topologically sorted
        d = max([producer_depth.get(i, 0) for i in n.input] or [0])
        if n.op_type == 'Conv':
            d += 1
            result.append((d, next(sigs)))
        for o in n.output:
            producer_depth[o] = d
    return sorted(result, key=lambda t: (t[0], repr(t[1])))


def op_histogram(model):
    from collections import Counter
    return Counter(n.op_type for n in model.graph.node)
