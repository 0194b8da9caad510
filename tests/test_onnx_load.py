"""The ONNX importer on malformed files: a mutation corpus (truncations, byte flips, and structural defects made
through the protobuf) where every failure is a GraphcLoadError naming the file and what is wrong, nothing else."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip('onnx')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphc as gc  # noqa: E402
from graphc.base import GraphcLoadError  # noqa: E402
from graphc.gluon import nn  # noqa: E402


@pytest.fixture(scope='module')
def model_bytes(tmp_path_factory):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(3, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'), nn.MaxPool2D(), nn.Flatten(),
            nn.Dense(4))
    net.initialize()
    net.hybridize()
    net(gc.nd.ones((1, 2, 6, 6)))
    p = tmp_path_factory.mktemp('m') / 'm.onnx'
    net.export_onnx(str(p), dynamic=True)
    return p.read_bytes()


def load(data, tmp_path, name='x.onnx'):
    p = tmp_path / name
    p.write_bytes(data)
    return gc.onnx.import_to_gluon(str(p))


def only_load_errors(data, tmp_path):
    try:
        blk = load(data, tmp_path)
    except GraphcLoadError as e:
        assert str(e).startswith(str(tmp_path)), e
        return 'error'
    blk(gc.nd.ones((1, 2, 6, 6)))   # a mutation that still makes a valid model runs (or raises GraphcError)
    return 'ok'


def test_the_clean_model_loads(model_bytes, tmp_path):
    assert only_load_errors(model_bytes, tmp_path) == 'ok'


def test_truncations(model_bytes, tmp_path):
    n = len(model_bytes)
    for cut in sorted(set(np.linspace(0, n - 1, 60).astype(int))):
        assert only_load_errors(model_bytes[:cut], tmp_path) in ('error', 'ok')


def test_byte_flips(model_bytes, tmp_path):
    r = np.random.default_rng(0)
    kinds = set()
    for _ in range(150):
        b = bytearray(model_bytes)
        for i in r.integers(0, len(b), int(r.integers(1, 4))):
            b[i] = int(r.integers(0, 256))
        try:
            kinds.add(only_load_errors(bytes(b), tmp_path))
        except gc.GraphcError as e:   # a valid model with different numbers may fail at run time, named
            assert not isinstance(e, GraphcLoadError)
            kinds.add('runtime')
    assert 'error' in kinds


def mutate(model_bytes, f):
    m = onnx.ModelProto()
    m.ParseFromString(model_bytes)
    f(m)
    return m.SerializeToString()


def _init(m, name_part):
    return next(t for t in m.graph.initializer if name_part in t.name)


def _node(m, op):
    return next(n for n in m.graph.node if n.op_type == op)


STRUCTURAL = {
    'no graph': (lambda m: m.ClearField('graph'), 'no graph'),
    'negative dim': (lambda m: _init(m, 'weight').dims.__setitem__(0, -3), 'negative or absurd'),
    'absurd dims': (lambda m: _init(m, 'weight').dims.extend([1 << 30, 1 << 30]), 'over the limit'),
    'too many dims': (lambda m: _init(m, 'weight').dims.extend([1] * 40), 'dims is over the limit'),
    'raw data short': (lambda m: setattr(_init(m, 'weight'), 'raw_data', b'\0' * 7), 'bytes of data'),
    'unknown dtype': (lambda m: setattr(_init(m, 'weight'), 'data_type', 16), 'data type 16 is not supported'),
    'undefined input': (lambda m: _node(m, 'Relu').input.__setitem__(0, 'ghost'), "'ghost' is not defined"),
    'forward reference': (lambda m: _node(m, 'Conv').input.__setitem__(0, m.graph.node[-1].output[0]),
                          'is not defined before this node'),
    'output twice': (lambda m: _node(m, 'Relu').output.__setitem__(0, _node(m, 'Conv').output[0]),
                     'is defined twice'),
    'unknown op': (lambda m: setattr(_node(m, 'Relu'), 'op_type', 'FancyOp'), "operator 'FancyOp' is not supported"),
    'custom domain': (lambda m: setattr(_node(m, 'Relu'), 'domain', 'com.evil'), "domain 'com.evil'"),
    'no opset': (lambda m: m.ClearField('opset_import'), 'opset_import'),
    'subgraph attribute': (lambda m: _node(m, 'Relu').attribute.append(
        helper.make_attribute('body', helper.make_graph([], 'g', [], []))), 'subgraph attributes'),
    'huge attribute': (lambda m: _node(m, 'Relu').attribute.append(helper.make_attribute('x', [1] * 70000)),
                       'over the size limits'),
    'attribute of the wrong type': (lambda m: _set_attr(_node(m, 'Conv'), 'strides', 'two'), 'Conv'),
    'kernel too big': (lambda m: _set_attr(_node(m, 'MaxPool'), 'kernel_shape', [50, 50]), 'MaxPool'),
    'absurd attribute': (lambda m: _set_attr(_node(m, 'Conv'), 'pads', [1 << 40] * 4), 'over 2147483648'),
    'graph output missing': (lambda m: setattr(m.graph.output[0], 'name', 'nothing'), "'nothing' is not computed"),
    'input without shape': (lambda m: m.graph.input[0].type.tensor_type.ClearField('shape'), 'has no shape'),
    'input of absurd shape': (lambda m: m.graph.input[0].type.tensor_type.shape.dim[1].__setattr__(
        'dim_value', 1 << 40), 'negative or absurd'),
    'non-constant reshape': (lambda m: _reshape_from_input(m), 'must be a constant'),
    'planned memory': (lambda m: _huge_activation(m), 'over the limit'),
}


def _set_attr(node, name, value):
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def _reshape_from_input(m):
    n = helper.make_node('Reshape', [m.graph.output[0].name, m.graph.input[0].name], ['r'])
    m.graph.node.append(n)
    m.graph.output[0].name = 'r'


def _huge_activation(m):
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 60000
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 60000


@pytest.mark.parametrize('what', sorted(STRUCTURAL))
def test_structural_defects(what, model_bytes, tmp_path):
    f, msg = STRUCTURAL[what]
    with pytest.raises(GraphcLoadError, match=msg):
        load(mutate(model_bytes, f), tmp_path)


def test_not_a_file_and_too_big(tmp_path, monkeypatch):
    with pytest.raises(GraphcLoadError, match='cannot read'):
        gc.onnx.import_model(str(tmp_path / 'missing.onnx'))
    with pytest.raises(GraphcLoadError, match='not an ONNX model'):
        load(b'{"nodes": []}', tmp_path)
    from graphc.onnx import importer
    monkeypatch.setattr(importer, 'MAX_ONNX_BYTES', 100)
    (tmp_path / 'big.onnx').write_bytes(b'\0' * 101)
    with pytest.raises(GraphcLoadError, match='over the 100-byte limit'):
        gc.onnx.import_model(str(tmp_path / 'big.onnx'))


def external_model(tmp_path, location, offset=0, length=None, data=None):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = numpy_helper.from_array(w, 'w')
    t.ClearField('raw_data')
    t.data_location = TensorProto.EXTERNAL
    for k, v in (('location', location), ('offset', str(offset)), ('length', str(length or w.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node('MatMul', ['x', 'w'], ['y'])], 'g',
                          [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 3])], initializer=[t])
    d = tmp_path / 'model'
    d.mkdir(exist_ok=True)
    (d / 'weights.bin').write_bytes(w.tobytes() if data is None else data)
    p = d / 'm.onnx'
    p.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]).SerializeToString())
    return p, w


def test_external_data_inside_the_folder_only(tmp_path):
    p, w = external_model(tmp_path, 'weights.bin')
    sym_, args, _ = gc.onnx.import_model(str(p))
    np.testing.assert_array_equal(args['w'].asnumpy(), w)
    (tmp_path / 'secret.bin').write_bytes(b'\0' * 24)
    os.symlink(tmp_path / 'secret.bin', tmp_path / 'model' / 'link.bin')
    for loc, msg in (('../secret.bin', 'outside the model'), (str(tmp_path / 'secret.bin'), 'relative path'),
                     ('link.bin', 'outside the model'), ('nothing.bin', 'cannot read external data')):
        p, _ = external_model(tmp_path, loc)
        with pytest.raises(GraphcLoadError, match=msg):
            gc.onnx.import_model(str(p))
    p, _ = external_model(tmp_path, 'weights.bin', offset=20)
    with pytest.raises(GraphcLoadError, match='the tensor needs bytes 20..44'):
        gc.onnx.import_model(str(p))
    p, _ = external_model(tmp_path, 'weights.bin', length=8)
    with pytest.raises(GraphcLoadError, match='do not fit dims'):
        gc.onnx.import_model(str(p))


def test_an_op_graphc_lacks_names_op_and_node(tmp_path):
    g = helper.make_graph([helper.make_node('HardSwish', ['x'], ['y'], name='hs1')], 'g',
                          [helper.make_tensor_value_info('x', TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, [2])])
    with pytest.raises(GraphcLoadError, match=r"node 0 \('hs1', HardSwish\): ONNX operator 'HardSwish' is not "
                                              r"supported by graphc"):
        gc.onnx.import_model(helper.make_model(g).SerializeToString())
