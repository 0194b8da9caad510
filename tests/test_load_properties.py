"""Malformed model files, property-based: hypothesis mutates valid symbol JSON and .params files (truncation,
flipped bytes, huge dims, deep nesting, duplicate names, wrong dtypes, random values at random places). Loading
either works or raises GraphcLoadError -- never another exception -- within a time limit per case, and never
allocates more than the file could hold. A loaded graph's shape inference raises only GraphcError.
(tests/test_load_hardening.py checks the exact messages of a fixed corpus; this file searches around it.)"""
import contextlib
import json
import os
import signal
import struct
import tempfile
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from graphc import mxjson
from graphc.base import GraphcError, GraphcLoadError
from graphc.gluon.symbol_block import SymbolBlock
from graphc.serialization import load_frombuffer, load_ndarrays, save_ndarrays

MODELS = os.path.join(os.path.dirname(__file__), 'data', 'mxnet_models')
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TIME_LIMIT_S = 5
MEM_SLACK = 4 << 20   # bytes a load may allocate beyond the file's own size (parsing, Python objects)


def _symbol_texts():
    texts = [open(os.path.join(MODELS, m, f'{m}-symbol.json')).read() for m in ('mlp', 'lenet_bn')]
    import fuzz  # a graphc export with many op kinds: shape ops, reductions, gathers, BatchNorm
    from graphc.mxjson import graph_to_json
    for seed in (11, 42):
        o = fuzz.Oracle(fuzz.generate(seed), ())
        texts.append(graph_to_json(o.graph(consts=False)))
    return texts


def _params_blobs(tmp):
    blobs = [open(os.path.join(MODELS, 'lenet_bn', 'lenet_bn-0000.params'), 'rb').read()]
    r = np.random.default_rng(0)
    for i, data in enumerate([
            {'arg:w': r.normal(size=(3, 4)).astype(np.float32), 'aux:m': np.arange(5, dtype=np.int64),
             'b': np.array([1, 0, 1], np.uint8), 'h': r.normal(size=(2, 1, 2)).astype(np.float16)},
            [np.float64(2.5) * np.ones(()), np.ones((2, 0), np.int32), np.arange(6, dtype=np.int8).reshape(2, 3)]]):
        p = os.path.join(tmp, f'b{i}.params')
        save_ndarrays(p, data)
        blobs.append(open(p, 'rb').read())
    return blobs


TEXTS = _symbol_texts()
with tempfile.TemporaryDirectory() as _d:
    PARAMS = _params_blobs(_d)


@contextlib.contextmanager
def limits(file_bytes):
    """Fail a case that runs past TIME_LIMIT_S (SIGALRM) or allocates more than the file plus MEM_SLACK."""
    def boom(*_):
        raise TimeoutError(f"a load took more than {TIME_LIMIT_S} s")
    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
        assert peak <= file_bytes + MEM_SLACK, f"loading a {file_bytes}-byte file allocated {peak} bytes"
    finally:
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- symbol JSON
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) |
    st.sampled_from(['', 'null', 'FullyConnected', '(3, 3)', '(0,)', '(-1, 5)', '(2147483648, 2147483648)',
                     '(100000, 100000, 100000)', '[1,', 'True', 'relu', '1e400', '-0', '99', '7', '__import__("os")',
                     '(None, 1)', 'float16', '0x10']) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


def _paths(d, prefix=()):
    """Every (container, key) in a parsed JSON document."""
    out = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    for k, v in items:
        out.append((d, k))
        out += _paths(v, prefix + (k,))
    return out


@st.composite
def mutated_json(draw):
    text = draw(st.sampled_from(TEXTS))
    d, deep = json.loads(text), 0
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(['replace', 'replace', 'delete', 'dup_node', 'shape', 'dtype', 'attr',
                                   'deep', 'swap', 'inputs']))
        nodes = d.get('nodes') if isinstance(d, dict) else None
        nodes = nodes if isinstance(nodes, list) and nodes and all(isinstance(n, dict) for n in nodes) else None
        if how in ('replace', 'delete') or nodes is None:
            paths = _paths(d)
            if not paths:
                break
            c, k = paths[draw(st.integers(0, len(paths) - 1))]
            if how == 'delete' and isinstance(c, dict):
                del c[k]
            else:
                c[k] = draw(JSON_VALUES)
            continue
        i = draw(st.integers(0, len(nodes) - 1))
        n = nodes[i]
        if how == 'dup_node':  # a duplicate name (the copy is appended, or replaces a later node)
            nodes.insert(draw(st.integers(i, len(nodes))), json.loads(json.dumps(n)))
        elif how in ('shape', 'dtype', 'attr'):
            a = n.setdefault('attrs', {}) if isinstance(n.get('attrs', {}), dict) else {}
            key = {'shape': '__shape__', 'dtype': '__dtype__'}.get(how) or draw(st.sampled_from(
                ['num_hidden', 'kernel', 'num_filter', 'shape', 'axis', 'num_outputs', 'reps', 'pad', 'eps',
                 'act_type', 'no_bias', 'num_args', 'stride', 'dim']))
            a[key] = draw(st.sampled_from(['(2147483647, 2147483647)', '(0, 0, 0)', '(4294967296,)', '(-3, 2)',
                                           '(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)', '0',
                                           '-1', '2147483648', '9' * 40, '12', '6', '(1,)', '()', 'nan', 'x']))
        elif how == 'deep':  # spliced into the text at the end (a deep object would recurse here)
            deep = draw(st.integers(30, 3000))
            n[draw(st.sampled_from(['inputs', 'attrs', 'extra']))] = '@deep@'
        elif how == 'swap' and len(nodes) > 1:
            j = draw(st.integers(0, len(nodes) - 1))
            nodes[i], nodes[j] = nodes[j], nodes[i]
        elif how == 'inputs':
            n['inputs'] = draw(st.lists(st.lists(st.integers(-2, len(nodes) + 2), min_size=1, max_size=4),
                                        max_size=4))
    out = json.dumps(d)
    if deep:
        out = out.replace('"@deep@"', '[' * deep + ']' * deep)
    cut = draw(st.sampled_from([None, None, None, 'truncate', 'flip']))
    if cut == 'truncate':
        out = out[:draw(st.integers(0, len(out)))]
    elif cut == 'flip':
        b = bytearray(out.encode())
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] ^= draw(st.integers(1, 255))
        return bytes(b)
    return out.encode()


def _load_json_blob(blob, tmp_path):
    p = tmp_path / 'm-symbol.json'
    p.write_bytes(blob)
    with limits(len(blob) * 40):  # JSON parses into Python objects: tens of bytes per byte of text
        try:
            sym = mxjson.load_json_file(str(p))
        except GraphcLoadError as e:
            assert 'm-symbol.json' in str(e)
            return None
        try:  # what import does next: a SymbolBlock over the graph, and shape inference from its variables
            names = sym.list_inputs()
            SymbolBlock(sym, names[:1])
            sym.infer_shape()
        except GraphcError:
            pass
        return sym


@settings(max_examples=450, **SETTINGS)
@given(blob=mutated_json())
def test_mutated_symbol_json_loads_or_raises_graphc_load_error(blob, tmp_path_factory):
    _load_json_blob(blob, tmp_path_factory.mktemp('j'))


@settings(max_examples=150, **SETTINGS)
@given(depth=st.integers(10, 200_000), kind=st.sampled_from('[{'), where=st.sampled_from(['top', 'attrs', 'inputs']))
def test_deep_nesting_is_refused_quickly(depth, kind, where, tmp_path_factory):
    nest = ('[' * depth + ']' * depth) if kind == '[' else ('{"a":' * depth + '1' + '}' * depth)
    if where == 'top':
        text = nest
    else:
        d = json.loads(TEXTS[0])
        d['nodes'][3][where] = '@'
        text = json.dumps(d).replace('"@"', nest)
    sym = _load_json_blob(text.encode(), tmp_path_factory.mktemp('d'))
    assert sym is None or depth <= mxjson.MAX_DEPTH


# ---------------------------------------------------------------- .params
@st.composite
def mutated_params(draw):
    blob = bytearray(draw(st.sampled_from(PARAMS)))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(['truncate', 'flip', 'field', 'field', 'insert', 'append', 'dup_name']))
        if how == 'truncate':
            del blob[draw(st.integers(0, max(len(blob) - 1, 0))):]
        elif how == 'flip' and blob:
            blob[draw(st.integers(0, len(blob) - 1))] ^= draw(st.integers(1, 255))
        elif how == 'field' and len(blob) >= 8:  # a count, ndim, dim, dtype code or name length set to an extreme
            at = draw(st.integers(0, min(len(blob) - 8, 400)))
            fmt = draw(st.sampled_from(['<q', '<i', '<Q', '<I']))
            v = draw(st.sampled_from([0, 1, 2, 7, 12, 33, -1, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 62, -(2 ** 31)]))
            try:
                blob[at:at + struct.calcsize(fmt)] = struct.pack(fmt, v)
            except struct.error:
                pass
        elif how == 'insert':
            at = draw(st.integers(0, len(blob)))
            blob[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == 'append':
            blob += draw(st.binary(min_size=1, max_size=64))
        elif how == 'dup_name':
            names = [m for m in (b'arg:w', b'aux:m') if m in blob]
            if len(names) == 2:
                i = blob.index(b'aux:m')
                blob[i:i + 5] = b'arg:w'
    return bytes(blob)


def _load_params(blob):
    with limits(len(blob)):
        try:
            out = load_frombuffer(blob, 'm.params')
        except GraphcLoadError as e:
            assert 'm.params' in str(e) and 'byte offset' in str(e)
            return None
    arrays = list(out.values()) if isinstance(out, dict) else out
    assert sum(a.asnumpy().nbytes for a in arrays) <= len(blob)
    return out


@settings(max_examples=450, **SETTINGS)
@given(blob=mutated_params())
def test_mutated_params_load_or_raise_graphc_load_error(blob):
    _load_params(blob)


def test_params_property_runs_on_real_files_too(tmp_path):
    """The unmutated seeds load, and a mutated file on disk goes through the same checks as bytes."""
    for blob in PARAMS:
        assert _load_params(blob) is not None
    p = tmp_path / 'x.params'
    p.write_bytes(PARAMS[1][:-3])
    with pytest.raises(GraphcLoadError, match=r"x.params: byte offset \d+: "):
        load_ndarrays(str(p))
