"""Untrusted symbol files: a corpus of malformed files built from the real MXNet 1.9.1 exports.

Every case must raise GraphcLoadError whose message names the file, where (node index and name,
attribute) and what is wrong; nothing in a file is ever run as code, and no claimed size is allocated.
"""
import builtins
import contextlib
import importlib
import json
import os
import pickle
import subprocess

import numpy as np
import pytest

from graphc import mxjson, nd
from graphc.base import GraphcLoadError
from graphc.gluon.symbol_block import SymbolBlock
from graphc.serialization import load_ndarrays, save_ndarrays

MODELS = os.path.join(os.path.dirname(__file__), 'data', 'mxnet_models')
TEXT = {m: open(os.path.join(MODELS, m, f'{m}-symbol.json')).read() for m in ('mlp', 'lenet_bn')}
# mlp nodes: 0 data, 1 dense0_weight, 2 dense0_bias, 3 dense0_fwd (FullyConnected), 4 dense0_relu_fwd (Activation),
# ..., 11 dense2_fwd. lenet_bn: 3 conv0_fwd (Convolution), 8 batchnorm0_fwd, 10 pool0_fwd, 37 dense1_fwd.
DEL = object()


def node(i, **kv):
    """Set (or, with DEL, remove) keys of node i."""
    def f(d):
        for k, v in kv.items():
            d['nodes'][i].pop(k, None) if v is DEL else d['nodes'][i].__setitem__(k, v)
    return f


def attr(i, **kv):
    def f(d):
        a = d['nodes'][i].setdefault('attrs', {})
        for k, v in kv.items():
            a.pop(k, None) if v is DEL else a.__setitem__(k, v)
    return f


def top(**kv):
    def f(d):
        for k, v in kv.items():
            d.pop(k, None) if v is DEL else d.__setitem__(k, v)
    return f


def raw(text):
    """A case written as raw text or bytes (text may be a function of the mlp file's text)."""
    return lambda d, t: text(t) if callable(text) else text


def inputs(i, *entries):
    return node(i, inputs=list(entries))


def _big_op(d):
    d['nodes'][4] = {'op': 'broadcast_to', 'name': 'boom', 'attrs': {'shape': '(100000, 100000, 100000)'},
                     'inputs': [[3, 0, 0]]}


def _dup_key(t):
    return t.replace('"op": "FullyConnected", ', '"op": "FullyConnected", "op": "null", ', 1)


# (id, model, mutation of the parsed file (or raw text), regex the message must match, module constants to patch)
CASES = [
    ('not_json', 'mlp', raw('hello'), r"not valid JSON: Expecting value \(line 1, column 1, offset 0\)", {}),
    ('empty_file', 'mlp', raw(''), r"not valid JSON: Expecting value", {}),
    *[(f'truncated_{k}', 'mlp', raw(lambda t, k=k: t[:int(len(t) * k)]),
       r"not valid JSON: (Unterminated string|Expecting).* \(line \d+, column \d+, offset \d+\)", {})
      for k in (0.002, 0.31, 0.5, 0.999)],
    ('not_utf8', 'mlp', raw(lambda t: t.encode()[:40] + b'\xff\xfe' + t.encode()[40:]),
     r"not UTF-8 text \(byte offset 40\)", {}),
    ('top_level_list', 'mlp', raw('[{"nodes": []}]'), r"top level must be an object, got list", {}),
    ('deep_nesting', 'mlp', raw('[' * 100000 + ']' * 100000), r"nested too deeply", {}),
    ('deep_nesting_in_node', 'mlp', node(3, extra=json.loads('[' * 200 + ']' * 200)),
     r"nested more than 64 levels deep", {}),
    ('huge_int_literal', 'mlp', raw('{"nodes": [' + '9' * 5000 + ']}'),
     r"not valid JSON: Exceeds the limit .*digits", {}),
    ('nan_literal', 'mlp', raw(lambda t: t.replace('[[0, 0, 0]', '[[NaN, 0, 0]', 1)),
     r"not valid JSON: NaN is not a JSON value", {}),
    ('duplicate_key', 'mlp', raw(_dup_key), r"not valid JSON: duplicate key 'op' in an object", {}),
    ('nodes_missing', 'mlp', top(nodes=DEL), r"'nodes' must be a non-empty list, got nothing", {}),
    ('nodes_empty', 'mlp', top(nodes=[]), r"'nodes' must be a non-empty list, got \[\]", {}),
    ('nodes_not_list', 'mlp', top(nodes={'0': {'op': 'null', 'name': 'data'}}),
     r"'nodes' must be a non-empty list, got dict", {}),
    ('node_not_object', 'mlp', lambda d: d['nodes'].__setitem__(3, 'FullyConnected'),
     r"node 3: must be an object, got str", {}),
    ('op_missing', 'mlp', node(3, op=DEL), r"node 3: 'op' must be a string, got nothing", {}),
    ('op_not_string', 'mlp', node(3, op=['FullyConnected']), r"node 3: 'op' must be a string, got list", {}),
    ('name_not_string', 'mlp', node(3, name=5), r"node 3: 'name' must be a non-empty string, got int", {}),
    ('name_empty', 'mlp', node(3, name=''), r"node 3: 'name' must be a non-empty string, got ''", {}),
    ('duplicate_name', 'mlp', node(2, name='dense0_weight'),
     r"node 2 \('dense0_weight'\): duplicate node name \(also node 1\)", {}),
    ('unknown_op', 'lenet_bn', node(3, op='Convolution3000'),
     r"node 3 \('conv0_fwd'\): operator 'Convolution3000' is not supported by graphc", {}),
    ('code_as_op', 'mlp', node(3, op="__import__('os').system"),
     r"node 3 \('dense0_fwd'\): operator \"__import__\('os'\).system\" is not supported", {}),
    ('attrs_not_object', 'mlp', node(3, attrs='num_hidden=256'),
     r"node 3 \('dense0_fwd'\): 'attrs' must be an object, got str", {}),
    ('attr_bare_number', 'mlp', attr(3, num_hidden=256),
     r"node 3 \('dense0_fwd'\): attribute 'num_hidden' must be a JSON string, got int 256", {}),
    ('attr_int_as_float', 'mlp', attr(3, num_hidden='32.0'),
     r"node 3 \('dense0_fwd'\): FullyConnected: bad value for attribute 'num_hidden': not an int: '32.0'", {}),
    ('attr_kernel_unbalanced', 'lenet_bn', attr(3, kernel='(5,5'),
     r"node 3 \('conv0_fwd'\): Convolution: bad value for attribute 'kernel': not a tuple: '\(5,5'", {}),
    ('attr_kernel_code', 'lenet_bn', attr(3, kernel="__import__('os')"),
     r"node 3 \('conv0_fwd'\): Convolution: bad value for attribute 'kernel': not a tuple", {}),
    ('attr_kernel_zero', 'lenet_bn', attr(3, kernel='(0, 5)'),
     r"node 3 \('conv0_fwd'\): attribute 'kernel' is \(0, 5\); each value must be >= 1", {}),
    ('attr_pad_negative', 'lenet_bn', attr(10, pad='(-1, 0)'),
     r"node 10 \('pool0_fwd'\): attribute 'pad' is \(-1, 0\); each value must be >= 0", {}),
    ('attr_num_hidden_zero', 'mlp', attr(11, num_hidden='0'),
     r"node 11 \('dense2_fwd'\): attribute 'num_hidden' is 0; each value must be >= 1", {}),
    ('attr_bool_no', 'mlp', attr(3, no_bias='no'),
     r"node 3 \('dense0_fwd'\): FullyConnected: bad value for attribute 'no_bias': not a bool: 'no'", {}),
    ('attr_choice_evil', 'mlp', attr(4, act_type='evil'),
     r"node 4 \('dense0_relu_fwd'\): Activation: bad value for attribute 'act_type': expected one of", {}),
    ('attr_unknown_key', 'mlp', attr(3, foo='1'),
     r"node 3 \('dense0_fwd'\): FullyConnected: unknown attribute 'foo'", {}),
    ('attr_internal_key', 'mlp', attr(3, _need='(False,)'),
     r"node 3 \('dense0_fwd'\): FullyConnected: unknown attribute '_need'", {}),
    ('attr_required_missing', 'mlp', attr(3, num_hidden=DEL),
     r"node 3 \('dense0_fwd'\): FullyConnected: missing required attribute 'num_hidden'", {}),
    ('attr_huge_op_shape', 'mlp', _big_op,
     r"node 4 \('boom'\): attribute 'shape' \(100000, 100000, 100000\) has 1000000000000000 elements", {}),
    ('attr_value_too_long', 'lenet_bn', attr(3, kernel='(' + '1, ' * 500_000 + '1)'),
     r"node 3 \('conv0_fwd'\): attribute 'kernel' is 1500003 characters long, over the limit of 1024", {}),
    ('shape_too_long', 'mlp', attr(1, __shape__='(' + '0, ' * 500 + ')'),
     r"node 1 \('dense0_weight'\): attribute '__shape__' is 1502 characters long", {}),
    ('too_many_outputs', 'mlp', node(4, op='SliceChannel', attrs={'num_outputs': '2000000000'}),
     r"node 4 \('dense0_relu_fwd'\): SliceChannel would have 2000000000 outputs; 1 to 4096 are supported", {}),
    ('concat_num_args', 'mlp', node(4, op='Concat', attrs={'num_args': '3'}),
     r"node 4 \('dense0_relu_fwd'\): Concat has 1 inputs, num_args says 3", {}),
    ('huge_node_index', 'mlp', inputs(3, [0, 0, 0], [10 ** 300, 0, 0], [2, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 1 refers to node 1000.*, which is not an earlier node", {}),
    ('bool_entry', 'mlp', inputs(3, [0, 0, 0], [1, 0, 0], [True, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 2 is \[True, 0, 0\]; it must be", {}),
    ('attr_huge_value', 'mlp', attr(11, num_hidden='9' * 30),
     r"node 11 \('dense2_fwd'\): attribute 'num_hidden' is 9{30}; over the limit", {}),
    ('shape_negative', 'mlp', attr(1, __shape__='(-1, 784)'),
     r"node 1 \('dense0_weight'\): __shape__ '\(-1, 784\)' has a negative or absurd dimension", {}),
    ('shape_huge_dim', 'mlp', attr(1, __shape__='(100000000000, 100000000000)'),
     r"node 1 \('dense0_weight'\): __shape__ '\(100000000000, 100000000000\)' has a negative or absurd", {}),
    ('shape_huge_product', 'mlp', attr(1, __shape__='(2000000000, 0, 2000000000)'),
     r"node 1 \('dense0_weight'\): __shape__ '\(2000000000, 0, 2000000000\)' claims 4000000000000000000 elements",
     {}),
    ('shape_not_tuple', 'mlp', attr(1, __shape__='(256, x)'),
     r"node 1 \('dense0_weight'\): __shape__ '\(256, x\)' is not a tuple of ints", {}),
    ('dtype_unknown', 'mlp', attr(1, __dtype__='99'),
     r"node 1 \('dense0_weight'\): __dtype__ '99' is not a known dtype code", {}),
    ('var_unknown_attr', 'mlp', attr(1, foo='1'), r"node 1 \('dense0_weight'\): unknown variable attribute 'foo'", {}),
    ('forward_reference', 'mlp', inputs(3, [4, 0, 0], [1, 0, 0], [2, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 0 refers to node 4, which is not an earlier node \(a cycle", {}),
    ('self_reference', 'mlp', inputs(3, [0, 0, 0], [3, 0, 0], [2, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 1 refers to node 3, which is not an earlier node", {}),
    ('negative_index', 'mlp', inputs(3, [0, 0, 0], [1, 0, 0], [-1, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 2 refers to node -1", {}),
    ('output_out_of_range', 'mlp', inputs(3, [0, 1, 0], [1, 0, 0], [2, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 0 uses output 1 of node 0 \('data'\), which has 1", {}),
    ('entry_wrong_arity', 'mlp', inputs(3, [0], [1, 0, 0], [2, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 0 is \[0\]; it must be \[node, output, version\] integers", {}),
    ('entry_wrong_type', 'mlp', inputs(3, ['0', 0, 0], [1, 0, 0], [2, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 0 is \['0', 0, 0\]", {}),
    ('entry_float', 'mlp', inputs(3, [0, 0, 0], [1.0, 0, 0], [2, 0, 0]),
     r"node 3 \('dense0_fwd'\): input 1 is \[1.0, 0, 0\]", {}),
    ('inputs_not_list', 'mlp', node(3, inputs='0'), r"node 3 \('dense0_fwd'\): 'inputs' must be a list", {}),
    ('too_many_inputs', 'mlp', lambda d: None, r"node 3 \('dense0_fwd'\): 3 inputs is over the limit of 2",
     {'MAX_INPUTS': 2}),
    ('var_with_inputs', 'mlp', inputs(1, [0, 0, 0]), r"node 1 \('dense0_weight'\): a variable cannot have inputs", {}),
    ('fc_one_input', 'mlp', inputs(3, [0, 0, 0]),
     r"node 3 \('dense0_fwd'\): FullyConnected takes 3 inputs \(data, weight, bias\), got 1", {}),
    ('fc_bias_two_inputs', 'mlp', inputs(3, [0, 0, 0], [1, 0, 0]),
     r"node 3 \('dense0_fwd'\): FullyConnected takes 3 inputs \(data, weight, bias\), got 2", {}),
    ('fc_no_bias_three_inputs', 'mlp', attr(3, no_bias='True'),
     r"node 3 \('dense0_fwd'\): FullyConnected takes 2 inputs \(data, weight\), got 3", {}),
    ('control_deps', 'mlp', node(3, control_deps=[[0, 0, 0]]),
     r"node 3 \('dense0_fwd'\): 'control_deps' are not supported", {}),
    ('heads_missing', 'mlp', top(heads=DEL), r"'heads' must be a non-empty list of at most 200000 outputs, got nothing", {}),
    ('heads_empty', 'mlp', top(heads=[]), r"'heads' must be a non-empty list of at most 200000 outputs, got \[\]", {}),
    ('head_out_of_range', 'mlp', top(heads=[[99, 0, 0]]),
     r"heads\[0\] = \[99, 0, 0\] does not name an existing node output", {}),
    ('head_output_out_of_range', 'mlp', top(heads=[[11, 3, 0]]), r"heads\[0\] = \[11, 3, 0\] does not name", {}),
    ('head_not_list', 'mlp', top(heads=[11]), r"heads\[0\] = 11 does not name", {}),
    ('graph_attrs_not_object', 'mlp', top(attrs=['mxnet_version']), r"'attrs' must be an object, got list", {}),
    ('version_from_future', 'mlp', top(attrs={'graphc_version': ['str', '99.0.0']}),
     r"written by graphc 99.0.0, newer than this reader \(format 1\); upgrade graphc", {}),
    ('version_garbage', 'mlp', top(attrs={'graphc_version': ['str', 'exec(1)']}),
     r"attrs.graphc_version 'exec\(1\)' is not a version", {}),
    ('too_many_nodes', 'mlp', lambda d: None, r"12 nodes is over the limit of 5", {'MAX_NODES': 5}),
    ('file_over_cap', 'mlp', lambda d: None, r"\d+ bytes is over the 100-byte limit for a symbol file",
     {'MAX_JSON_BYTES': 100}),
]


def _write(tmp_path, model, mutate):
    d = json.loads(TEXT[model])
    out = mutate(d) if mutate.__code__.co_argcount == 1 else mutate(d, TEXT[model])
    p = tmp_path / f'{model}-symbol.json'
    if isinstance(out, bytes):
        p.write_bytes(out)
    else:
        p.write_text(out if isinstance(out, str) else json.dumps(d, indent=2))
    return p


def test_corpus_is_large_enough():
    assert len(CASES) >= 35 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_malformed_symbol_file(case, tmp_path, monkeypatch):
    name, model, mutate, match, patch = case
    p = _write(tmp_path, model, mutate)
    for k, v in patch.items():
        monkeypatch.setattr(mxjson, k, v)
    with pytest.raises(GraphcLoadError, match=match) as e:
        mxjson.load_json_file(str(p))
    assert str(e.value).startswith(f"{p}: "), str(e.value)       # the file comes first
    assert len(str(e.value)) < 2000                               # bounded, even for huge inputs


def test_real_files_still_load():
    for m in TEXT:
        sym = mxjson.load_json_file(os.path.join(MODELS, m, f'{m}-symbol.json'))
        assert sym.list_outputs() == [('dense2_fwd' if m == 'mlp' else 'dense1_fwd') + '_output']


def test_huge_sparse_file_is_not_read(tmp_path):
    p = tmp_path / 'huge-symbol.json'
    with open(p, 'wb') as f:
        f.truncate(mxjson.MAX_JSON_BYTES + 1)   # sparse: nothing is written, nothing may be read
    with pytest.raises(GraphcLoadError, match=rf"{mxjson.MAX_JSON_BYTES + 1} bytes is over the"):
        mxjson.load_json_file(str(p))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(GraphcLoadError, match=r"nope-symbol.json: cannot read: No such file"):
        mxjson.load_json_file(str(tmp_path / 'nope-symbol.json'))
    with pytest.raises(GraphcLoadError, match=r"cannot read: Is a directory"):
        mxjson.load_json_file(str(tmp_path))


def test_huge_names_give_short_messages(tmp_path):
    d = json.loads(TEXT['mlp'])
    d['nodes'][3]['name'] = 'x' * 1_000_000
    d['nodes'][3]['attrs']['kernel' * 100_000] = '('
    p = tmp_path / 'big.json'
    p.write_text(json.dumps(d))
    with pytest.raises(GraphcLoadError, match=r"node 3 \('x{20}.*'\): FullyConnected: unknown attribute 'kernelk") as e:
        mxjson.load_json_file(str(p))
    assert len(str(e.value)) < 2000


# ---------------------------------------------------------------- through SymbolBlock.imports, with .params
def _model_files(tmp_path, model='mlp', mutate=None, params=None):
    d = json.loads(TEXT[model])
    if mutate:
        mutate(d)
    sym = tmp_path / f'{model}-symbol.json'
    sym.write_text(json.dumps(d))
    arrays = load_ndarrays(os.path.join(MODELS, model, f'{model}-0000.params'))
    pf = tmp_path / f'{model}-0000.params'
    save_ndarrays(pf, params(arrays) if params else arrays)
    return str(sym), str(pf)


def _drop(k):
    return lambda a: {n: v for n, v in a.items() if n != k}


IMPORT_CASES = [
    ('weight_shape_vs_params', attr(1, __shape__='(128, 0)'), None,
     r"shapes do not match for 'dense0_weight': model \(128, 0\), file \(256, 784\)"),
    ('weight_rank_vs_params', attr(9, __shape__='(10, 256, 1)'), None,
     r"'dense2_weight': model \(10, 256, 1\), file \(10, 256\)"),
    ('param_missing', None, _drop('arg:dense2_bias'), r"parameters missing in the file: 'dense2_bias'"),
    ('param_extra', None, lambda a: dict(a, **{'arg:dense9_weight': a['arg:dense2_bias']}),
     r"the file has parameters the model does not: 'dense9_weight'"),
    ('param_renamed_in_json', node(2, name='dense0_b'), None, r"parameters missing in the file: 'dense0_b'"),
    ('param_dtype', None, lambda a: dict(a, **{'arg:dense0_bias': nd.array(a['arg:dense0_bias'], dtype='float64')}),
     r"'dense0_bias': model dtype float32, file dtype float64"),
]


@pytest.mark.parametrize('case', IMPORT_CASES, ids=[c[0] for c in IMPORT_CASES])
def test_imports_mismatch(case, tmp_path):
    name, mutate, params, match = case
    sym, pf = _model_files(tmp_path, mutate=mutate, params=params)
    with pytest.raises(GraphcLoadError, match=match) as e:
        SymbolBlock.imports(sym, ['data'], pf)
    assert pf in str(e.value)


def test_imports_truncated_params(tmp_path):
    sym, pf = _model_files(tmp_path)
    raw_ = open(pf, 'rb').read()
    open(pf, 'wb').write(raw_[:1000])
    with pytest.raises(GraphcLoadError, match=r"offset"):
        SymbolBlock.imports(sym, ['data'], pf)


@pytest.mark.parametrize('model', ['mlp', 'lenet_bn'])
def test_imports_real_models_match_mxnet(model):
    d = os.path.join(MODELS, model)
    blk = SymbolBlock.imports(os.path.join(d, f'{model}-symbol.json'), ['data'],
                              os.path.join(d, f'{model}-0000.params'))
    want = np.load(os.path.join(d, 'output.npy'))
    got = blk(nd.array(np.load(os.path.join(d, 'input.npy')))).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


# ---------------------------------------------------------------- code in a file is data
CODE = "__import__('os').system('touch PWNED')"


@contextlib.contextmanager
def no_code_execution(tmp_path):
    """Every way to run code from data raises while loading; a shell command would leave a file behind."""
    calls = []

    def trap(what):
        def f(*a, **k):
            calls.append(what)
            raise AssertionError(f"{what} called while loading")
        return f
    with pytest.MonkeyPatch.context() as mp:
        for mod, fn in ((builtins, 'eval'), (builtins, 'exec'), (builtins, 'compile'), (pickle, 'loads'),
                        (pickle, 'load'), (importlib, 'import_module'), (os, 'system'), (subprocess, 'Popen')):
            mp.setattr(mod, fn, trap(f"{mod.__name__}.{fn}"))
        mp.chdir(tmp_path)
        yield
    assert not calls and not os.path.exists(tmp_path / 'PWNED'), calls


def test_code_in_names_and_attrs_is_data(tmp_path):
    def evil(d):
        d['nodes'][3]['name'] = CODE                                  # an op node: params still match
        d['nodes'][4]['name'] = "exec(\"import pickle; pickle.loads(b'')\")"
        d['nodes'][2]['attrs']['__init__'] = f'["{CODE}", {{"value": "eval(1)"}}]'
        d['nodes'][2]['attrs']['__evil__'] = "lambda: __import__('subprocess').Popen('sh')"
    sym, pf = _model_files(tmp_path, mutate=evil)
    x = nd.array(np.load(os.path.join(MODELS, 'mlp', 'input.npy')))
    with no_code_execution(tmp_path):
        blk = SymbolBlock.imports(sym, ['data'], pf)
        got = blk(x).asnumpy()
    names = [n.name for n in blk._graph.nodes]
    assert names[3] == CODE and names[4].startswith('exec(')
    assert blk._graph.nodes[2].extra['__init__'].startswith(f'["{CODE}"')
    want = np.load(os.path.join(MODELS, 'mlp', 'output.npy'))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize('case', [c for c in CASES if 'code' in c[0] or 'evil' in c[0]], ids=lambda c: c[0])
def test_malformed_code_is_not_run(case, tmp_path):
    name, model, mutate, match, _ = case
    p = _write(tmp_path, model, mutate)
    with no_code_execution(tmp_path), pytest.raises(GraphcLoadError, match=match):
        mxjson.load_json_file(str(p))
