""".params (MXNet NDArray list) files: round trips, real MXNet files, and a corpus of malformed files."""
import json
import os
import struct
import time

import numpy as np
import pytest

from graphc.base import DTYPE_CODES, GraphcLoadError
from graphc.ndarray.ndarray import NDArray
from graphc.serialization import V2_MAGIC, V3_MAGIC, load_frombuffer, load_ndarrays, save_ndarrays

MODELS = os.path.join(os.path.dirname(__file__), 'data', 'mxnet_models')  # copied from ../shared: real MXNet 1.9.1


def _arrays():
    rng = np.random.default_rng(1)
    out = {}
    for dt in DTYPE_CODES:
        a = rng.normal(size=(2, 3, 4)) * 50
        out[f'x_{dt}'] = (a > 0) if dt == np.bool_ else a.astype(dt)
    out['empty'] = np.zeros((0, 5), np.float32)
    out['vec'] = np.arange(7, dtype=np.int64)
    out['fortran'] = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    out['ünïcode/name:0'] = np.ones((1,), np.float16)
    return out


def _check_same(got, want):
    assert list(got) == list(want)
    for k in want:
        assert isinstance(got[k], NDArray)
        a, b = got[k]._data, np.asarray(want[k])
        assert a.dtype == b.dtype and a.shape == b.shape, k
        np.testing.assert_array_equal(a, b)


def test_round_trip_all_dtypes_names(tmp_path):
    data = _arrays()
    save_ndarrays(tmp_path / 'a.params', {k: NDArray(v) if k == 'vec' else v for k, v in data.items()})
    _check_same(load_ndarrays(tmp_path / 'a.params'), data)
    raw = (tmp_path / 'a.params').read_bytes()
    assert struct.unpack_from('<QQQ', raw) == (0x112, 0, len(data))
    assert struct.unpack_from('<I', raw, 24)[0] == V2_MAGIC    # no 0-d array: MXNet 1.x's default V2


def test_round_trip_list_and_scalars(tmp_path):
    arrays = [np.array(3.5, np.float32), np.int32(7), np.array(True), np.zeros((2, 0, 3), np.uint8), np.eye(2)]
    save_ndarrays(tmp_path / 'l.params', arrays)
    got = load_ndarrays(tmp_path / 'l.params')
    assert isinstance(got, list) and len(got) == 5
    for g, a in zip(got, map(np.asarray, arrays)):
        assert g.shape == a.shape and g.dtype == a.dtype
        np.testing.assert_array_equal(g._data, a)
    raw = (tmp_path / 'l.params').read_bytes()
    assert struct.unpack_from('<I', raw, 24)[0] == V3_MAGIC    # a 0-d array needs NumPy shape semantics
    assert raw[-8:] == b'\0' * 8                               # no names
    save_ndarrays(tmp_path / 'e.params', [])
    assert (tmp_path / 'e.params').read_bytes() == struct.pack('<QQQQ', 0x112, 0, 0, 0)   # 32 bytes
    assert load_ndarrays(tmp_path / 'e.params') == []


def test_layout_matches_mxnet_doc(tmp_path):
    save_ndarrays(tmp_path / 'w.params', {'arg:dense0_weight': np.ones((256, 784), np.float32)})
    raw = (tmp_path / 'w.params').read_bytes()
    assert raw[:64] == bytes.fromhex('1201000000000000' '0000000000000000' '0100000000000000' 'c9fa93f9'
                                     '00000000' '02000000' '0001000000000000' '1003000000000000'
                                     '0100000000000000' '00000000')
    assert len(raw) == 64 + 256 * 784 * 4 + 8 + 8 + len('arg:dense0_weight')


@pytest.mark.parametrize('model', ['mlp', 'lenet_bn'])
def test_reads_real_mxnet_files(model, tmp_path):
    d = os.path.join(MODELS, model)
    manifest = json.load(open(os.path.join(d, 'manifest.json')))
    path = os.path.join(d, manifest['params_file'])
    params = load_ndarrays(path)
    assert len(params) == manifest['n_params_saved']
    assert sum(v._data.nbytes for v in params.values()) == manifest['param_bytes']
    assert all(v.dtype == np.float32 for v in params.values())
    sym = json.load(open(os.path.join(d, manifest['symbol_json'])))
    var_names = [n['name'] for n in sym['nodes'] if n['op'] == 'null' and n['name'] != 'data']
    assert [k[4:] for k in params] == var_names                      # arg:/aux: + graph input order
    if model == 'mlp':
        assert {k: v.shape for k, v in params.items()} == {
            'arg:dense0_weight': (256, 784), 'arg:dense0_bias': (256,), 'arg:dense1_weight': (256, 256),
            'arg:dense1_bias': (256,), 'arg:dense2_weight': (10, 256), 'arg:dense2_bias': (10,)}
    else:
        assert params['arg:conv0_weight'].shape == (32, 1, 5, 5)
        assert params['arg:conv2_weight'].shape == (128, 64, 4, 4)
        assert params['aux:batchnorm1_running_var'].shape == (64,)
        assert params['arg:dense1_weight'].shape == (10, 84)
        assert sum(k.startswith('aux:') for k in params) == 6
    save_ndarrays(tmp_path / 'again.params', params)                 # our writer: byte-identical to MXNet's
    assert (tmp_path / 'again.params').read_bytes() == open(path, 'rb').read()


def test_atomic_write_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / 'm.params'
    save_ndarrays(p, {'a': np.ones(3, np.float32)})
    old = p.read_bytes()

    def boom(*a):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(OSError, match='disk full'):
        save_ndarrays(p, {'a': np.zeros(3, np.float32)})
    assert p.read_bytes() == old and os.listdir(tmp_path) == ['m.params']   # temp file removed


# ---------------------------------------------------------------- malformed files
def _arr(shape=(2,), code=0, magic=V2_MAGIC, stype=0, ndim=None, data=None, dev=1):
    ndim = len(shape) if ndim is None else ndim
    b = struct.pack('<Iii', magic, stype, ndim) + struct.pack(f'<{len(shape)}q', *shape)
    b += struct.pack('<iii', dev, 0, code)
    return b + (data if data is not None else b'\1' * (4 * int(np.prod(shape))))


def _file(arrays, names=None, n=None, n_names=None, magic=0x112):
    b = struct.pack('<QQQ', magic, 0, len(arrays) if n is None else n) + b''.join(arrays)
    names = names or []
    b += struct.pack('<Q', len(names) if n_names is None else n_names)
    for s in names:
        s = s.encode() if isinstance(s, str) else s
        b += struct.pack('<Q', len(s)) + s
    return b


SMALL = _file([_arr((2, 3)), _arr((), code=4, magic=V3_MAGIC, data=b'\7\0\0\0')], names=['w', 'b'])

BAD = {
    'bad magic': (_file([], magic=0x113), 0, 'bad magic 0x113'),
    'huge n_arrays': (_file([], n=2 ** 62), 16, 'absurd array count'),
    'huge ndim': (_file([_arr(ndim=1 << 30)], ['a']), 32, 'ndim 1073741824'),
    'negative ndim': (_file([_arr(ndim=-5)], ['a']), 32, 'ndim -5'),
    'no-shape array': (_file([_arr((), ndim=0)], ['a']), 32, 'no shape'),
    'huge dims, tiny file': (_file([_arr((1 << 40, 1 << 40), data=b'')], ['a']), 64,
                             'needs 4835703278458516698824704 bytes'),
    'negative dim': (_file([_arr((-3, 2))], ['a']), 36, 'negative dimension'),
    'unknown dtype code': (_file([_arr(code=99)], ['a']), 52, 'unknown dtype code 99'),
    'unknown storage type': (_file([_arr(stype=3)], ['a']), 28, 'unknown storage type 3'),
    'row_sparse index out of range': (_file([struct.pack('<Iii2qi2qiiiii1q', V2_MAGIC, 1, 2, 1, 2, 2, 3, 2, 1, 0, 0,
                                                         6, 1, 1) + b'\0' * 8 + struct.pack('<q', 7)], ['a']),
                                      32, 'in [0, 3)'),
    'unknown device': (_file([_arr(dev=9)], ['a']), 44, 'unknown device type 9'),
    'unknown array magic': (_file([_arr(magic=0xDEADBEEF)], ['a']), 24, 'unknown array magic 0xdeadbeef'),
    'duplicate names': (_file([_arr(), _arr()], ['w', 'w']), 121, "duplicate name 'w'"),
    'names count mismatch': (_file([_arr(), _arr()], ['w']), 104, 'names count mismatch: 1 names for 2'),
    'huge names count': (_file([_arr()], n_names=2 ** 60), 64, 'names count mismatch'),
    'huge name length': (_file([_arr()], ['a'])[:-9] + struct.pack('<Q', 2 ** 50) + b'a', 72,
                         'claims 1125899906842624'),
    'bad utf-8': (_file([_arr()], [b'\xff\xfe']), 80, 'not valid UTF-8'),
    'trailing bytes': (_file([_arr()], ['a']) + b'junk', 81, '4 trailing bytes'),
}


@pytest.mark.parametrize('case', list(BAD))
def test_malformed_file_raises_with_offset(case, tmp_path):
    raw, offset, what = BAD[case]
    p = tmp_path / 'bad.params'
    p.write_bytes(raw)
    t = time.perf_counter()
    with pytest.raises(GraphcLoadError) as e:
        load_ndarrays(p)
    assert time.perf_counter() - t < 0.5
    msg = str(e.value)
    assert msg.startswith(f"{p}: byte offset {offset}: ") and what in msg, msg


# ---------------------------------------------------------------- bfloat16 (MXNet's dtype code 12)
def test_bfloat16_round_trip_is_bit_exact(tmp_path):
    """Every one of the 65536 bfloat16 bit patterns (NaNs with their payloads, infinities, subnormals, -0) comes
    back with its bits; the record is MXNet's: dtype code 12, then the bits as little-endian uint16."""
    ml_dtypes = pytest.importorskip('ml_dtypes')
    bf = np.dtype(ml_dtypes.bfloat16)
    bits = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256)
    rng = np.random.default_rng(0)
    data = {'all': bits.view(bf), 'w': NDArray(rng.normal(size=(3, 5)).astype(bf)),
            'scalar_row': rng.normal(size=(1,)).astype(bf), 'f32': np.ones(2, np.float32)}
    save_ndarrays(tmp_path / 'b.params', data)
    raw = (tmp_path / 'b.params').read_bytes()
    assert struct.unpack_from('<Iii2qiii', raw, 24) == (V2_MAGIC, 0, 2, 256, 256, 1, 0, 12)
    assert raw[24 + 40:24 + 40 + 2 * 65536] == bits.astype('<u2').tobytes()
    got = load_ndarrays(tmp_path / 'b.params')
    assert list(got) == list(data)
    for k, want in data.items():
        want = want._data if isinstance(want, NDArray) else want
        g = got[k]._data
        assert g.dtype == want.dtype and g.shape == want.shape, k
        np.testing.assert_array_equal(g.view(np.uint8), want.view(np.uint8), err_msg=k)  # the bits
    assert got['all'].dtype == bf and got['w'].asnumpy().dtype == bf
    save_ndarrays(tmp_path / 'c.params', got)                                           # and again: same bytes
    assert (tmp_path / 'c.params').read_bytes() == raw


def test_a_bfloat16_block_saves_and_loads_its_parameters(tmp_path):
    ml_dtypes = pytest.importorskip('ml_dtypes')
    from graphc import gluon
    nets = []
    for seed in (0, 1):
        net = gluon.nn.Dense(4, in_units=3)
        net.initialize()
        net.weight.set_data(NDArray(np.random.default_rng(seed).normal(size=(4, 3)).astype(np.float32)))
        net.cast('bfloat16')
        nets.append(net)
    nets[0].save_parameters(str(tmp_path / 'd.params'))
    nets[1].load_parameters(str(tmp_path / 'd.params'))
    for p0, p1 in zip(nets[0].collect_params().values(), nets[1].collect_params().values()):
        a, b = p0.data().asnumpy(), p1.data().asnumpy()
        assert a.dtype == b.dtype == np.dtype(ml_dtypes.bfloat16)
        np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))


def test_bfloat16_without_ml_dtypes_names_the_offset_and_the_package(tmp_path, monkeypatch):
    import sys

    from graphc import base
    monkeypatch.setitem(sys.modules, 'ml_dtypes', None)  # (import fails)
    monkeypatch.setattr(base, 'BF16', [None])
    p = tmp_path / 'bf.params'
    p.write_bytes(_file([_arr(), _arr(code=12, data=b'\0' * 4)], ['a', 'b']))
    with pytest.raises(GraphcLoadError) as e:
        load_ndarrays(p)
    assert str(e.value) == (f"{p}: byte offset 92: array 1: dtype code 12 is bfloat16, which needs the ml_dtypes "
                            "package (NumPy has no bfloat16): pip install ml_dtypes")


def test_a_huge_bfloat16_array_is_refused_before_allocating():
    pytest.importorskip('ml_dtypes')
    t = time.perf_counter()
    with pytest.raises(GraphcLoadError, match=r"byte offset 64: array 0 of shape \(1099511627776, 1099511627776\) "
                                              r"bfloat16 needs 2417851639229258349412352 bytes"):
        load_frombuffer(_file([_arr((1 << 40, 1 << 40), code=12, data=b'')], ['a']))
    assert time.perf_counter() - t < 0.5


def test_truncated_at_every_offset(tmp_path):
    assert isinstance(load_frombuffer(SMALL)['b'], NDArray) and load_frombuffer(SMALL)['b'].asscalar() == 7
    for cut in range(len(SMALL)):
        with pytest.raises(GraphcLoadError, match=r'<buffer>: byte offset \d+: .*truncated'):
            load_frombuffer(SMALL[:cut])
    p = tmp_path / 't.params'
    p.write_bytes(SMALL[:50])
    with pytest.raises(GraphcLoadError, match=f'{p}: byte offset 36: file truncated: array 0 shape'):
        load_ndarrays(p)


def test_missing_file(tmp_path):
    with pytest.raises(GraphcLoadError, match='cannot open'):
        load_ndarrays(tmp_path / 'nope.params')


def test_v1_arrays_load():
    v1 = struct.pack('<Ii2q', 0xF993FAC8, 2, 1, 2) + struct.pack('<iii', 1, 0, 1) + np.array([[1.5, -2]]).tobytes()
    got = load_frombuffer(_file([v1], ['x']))
    assert got['x'].shape == (1, 2) and got['x'].dtype == np.float64 and got['x']._data.tolist() == [[1.5, -2]]
