"""Property-based mutation of the two reference models (tests/data/mxnet_models: mlp, lenet_bn): each case
mutates the symbol JSON and/or the .params file (tuple attributes, internal ops, size attributes, huge
creation shapes, long names, deep chains, inputs, dtypes, parameter files) and runs in a forked child under
resource.setrlimit memory (RLIMIT_AS) and CPU-time limits and a wall-clock alarm: load with SymbolBlock.imports, then a forward
on the model's input (hybridized or eager, alternately).

Outcomes: ok (loaded and ran), load_error (GraphcLoadError while loading), run_error (a GraphcError from the
forward: a shape error names the op); the failures are raw (any other exception), crash (a signal), timeout,
memory (MemoryError or killed past the limit). Exit status 1 when any failure occurred.

    python tools/mutate_models.py --count 2000 --seed 0            # the full run (about 6 minutes a 1000)
    python tools/mutate_models.py --count 40 --seed 7 --json        # what tests/test_load_mutation.py runs
"""
import argparse
import copy
import json
import os
import random
import signal
import sys
import tempfile
import time

os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')  # forked children: no BLAS threads in the parent
os.environ.setdefault('GRAPHC_NUM_THREADS', '1')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, 'tests', 'data', 'mxnet_models')
MEM_LIMIT = 2 << 30        # RLIMIT_AS of a case
BUDGET = 1 << 30           # GRAPHC_MAX_GRAPH_BYTES in the children: the graph budget sits under the memory limit
TIME_LIMIT = 30            # seconds of CPU time a case (RLIMIT_CPU: stable on a loaded machine)
WALL_LIMIT = 120           # seconds of wall clock a case (SIGALRM: catches a process that blocks)

TUPLES = ['(None, None)', '(1,)', '(1, 1, 1)', '()', '(0, 0)', '(-1, 2)', '(1, None)', '(100000, 100000)',
          '(2147483647, 1)', '[3]', '(3, 3, 3, 3, 3)', 'None', '(' + ', '.join(['1'] * 33) + ')', '(2, 2)',
          '(5, 5)', '(1, 1)', '(4294967296, 1)', '(1, 0)']
SIZES = ['100000000', '2147483647', '0', '-1', '65536', '1e8', '3', '1', '4096', '99999999999', '10']
SIZE_ATTRS = {'one_hot': 'depth', 'repeat': 'repeats', 'tile': 'reps', 'SliceChannel': 'num_outputs',
              'FullyConnected': 'num_hidden', 'Embedding': 'output_dim'}
INTERNAL = ['_backward_pick', '_backward_take', '_backward_Convolution', '_backward_Pooling', '_backward_BatchNorm',
            '_backward_RNN', '_backward_LayerNorm', '_backward_Deconvolution', '_CachedOp', 'FusedOp', '_fused',
            '_rnn_param_concat', '_slice_assign', '_slice_assign_scalar', '_copy', '__import__', 'eval']
VALUES = ['', 'nan', 'inf', '-inf', '1e309', 'True', '(', '0x10', '\u0967\u0968', 'None', '[[1]]', 'relu', '9' * 400,
          '-0', ' 3 ', '(1,,2)', 'float16', 'int8', 'sigmoid', 'x' * 2000, '1.5', '(1.5, 2)', '{}']
SHAPES = ['(65536, 65536)', '(100000, 100000, 10)', '(8, 10)', '(0, 10)', '(2147483647,)', '(-5, 3)', '(1, 10)',
          '(30000, 30000)', '(8, 1)']


def load_model(name):
    import numpy as np
    d = os.path.join(MODELS, name)
    from graphc.serialization import load_ndarrays
    params = {k: v.asnumpy() for k, v in load_ndarrays(os.path.join(d, f'{name}-0000.params')).items()}
    return {'name': name, 'json': json.load(open(os.path.join(d, f'{name}-symbol.json'))), 'params': params,
            'input': np.load(os.path.join(d, 'input.npy'))}


def _ops(d):
    return [i for i, n in enumerate(d['nodes']) if n['op'] != 'null']


def _append(d, node):
    d['nodes'].append(node)
    return len(d['nodes']) - 1


def _set_head(d, i):
    d['heads'] = [[i, 0, 0]]


def m_tuple_attr(r, d, p):
    i = r.choice(_ops(d))
    attrs = d['nodes'][i].setdefault('attrs', {})
    keys = [k for k, v in attrs.items() if v.startswith(('(', '['))]
    if not keys or r.random() < 0.2:
        keys = _schema(d['nodes'][i]['op'], ['kernel', 'stride', 'pad', 'dilate', 'axes', 'shape', 'reps'])
    attrs[r.choice(keys)] = r.choice(TUPLES)


def _schema(op, wanted):
    """The attributes in `wanted` that op has (all of `wanted` when none), so most mutants reach inference."""
    from graphc.registry import OPS
    have = [k for k in wanted if op in OPS and k in OPS[op].attrs]
    return have or wanted


def m_internal_op(r, d, p):
    from graphc.registry import OPS
    i = r.choice(_ops(d))
    d['nodes'][i]['op'] = r.choice(INTERNAL) if r.random() < 0.7 else r.choice(sorted(OPS))


def m_size_attr(r, d, p):
    head = d['heads'][0][0]
    if r.random() < 0.6:  # a size-setting op on the output
        op = r.choice(sorted(SIZE_ATTRS))
        attrs = {SIZE_ATTRS[op]: r.choice(SIZES) if op != 'tile' else f"({r.choice(SIZES)}, {r.choice(SIZES)})"}
        ins = [[head, 0, 0]]
        if op == 'FullyConnected':
            attrs['no_bias'] = 'True'
            ins.append([_append(d, {'op': 'null', 'name': 'extra_w', 'inputs': []}), 0, 0])
        if op == 'Embedding':
            attrs['input_dim'] = r.choice(SIZES)
            ins.append([_append(d, {'op': 'null', 'name': 'extra_w', 'inputs': []}), 0, 0])
        _set_head(d, _append(d, {'op': op, 'name': 'sized', 'attrs': attrs, 'inputs': ins}))
    else:
        i = r.choice(_ops(d))
        keys = _schema(d['nodes'][i]['op'], ['num_hidden', 'num_filter', 'num_group', 'num_args', 'axis', 'depth',
                                             'num_outputs', 'eps', 'p', 'axes'])
        d['nodes'][i].setdefault('attrs', {})[r.choice(keys)] = r.choice(SIZES)


def m_creation(r, d, p):
    head = d['heads'][0][0]
    op = r.choice(['_zeros', 'broadcast_to'])
    if op == '_zeros':
        z = _append(d, {'op': '_zeros', 'name': 'zeros', 'attrs': {'shape': r.choice(SHAPES)}, 'inputs': []})
    else:
        z = _append(d, {'op': 'broadcast_to', 'name': 'bcast', 'attrs': {'shape': r.choice(SHAPES)},
                        'inputs': [[head, 0, 0]]})
    _set_head(d, _append(d, {'op': 'broadcast_add', 'name': 'plus', 'inputs': [[head, 0, 0], [z, 0, 0]]}))


def m_long_name(r, d, p):
    n = r.choice([300, 5000, 100_000, 1 << 20])
    i = r.randrange(len(d['nodes']))
    what = r.random()
    if what < 0.5:
        old = d['nodes'][i]['name']
        d['nodes'][i]['name'] = old + 'n' * n
        if old in p and r.random() < 0.5:
            p[old + 'n' * n] = p.pop(old)
    elif what < 0.8:
        d['nodes'][i].setdefault('attrs', {})[r.choice(['act_type', 'kernel', '__shape__', 'num_hidden'])] = 'v' * n
    else:
        d['nodes'][i].setdefault('attrs', {})['k' * n] = '1'


def m_deep_chain(r, d, p):
    n = r.choice([100, 1000, 3000, 10000])
    prev = d['heads'][0][0]
    for k in range(n):
        op = ('relu', 'sigmoid', '_plus_scalar', '_mul_scalar')[k % 4]
        node = {'op': op, 'name': f'chain{k}', 'inputs': [[prev, 0, 0]]}
        if op.endswith('_scalar'):
            node['attrs'] = {'scalar': '0.5'}
        prev = _append(d, node)
    _set_head(d, prev)


def m_random_attr(r, d, p):
    i = r.randrange(len(d['nodes']))
    attrs = d['nodes'][i].setdefault('attrs', {})
    keys = list(attrs) or _schema(d['nodes'][i]['op'], ['act_type', 'eps', 'momentum', 'fix_gamma', 'axis',
                                                         'no_bias', 'flatten', 'pool_type', 'global_pool'])
    attrs[r.choice(keys)] = r.choice(VALUES)


def m_inputs(r, d, p):
    i = r.choice(_ops(d))
    ins = d['nodes'][i]['inputs']
    what = r.random()
    if what < 0.3 and ins:
        ins.pop(r.randrange(len(ins)))
    elif what < 0.5:
        ins.append([r.randrange(i), 0, 0])
    elif ins:
        k = r.randrange(len(ins))
        ins[k] = [r.choice([i, i + 1, -1, 10 ** 6, r.randrange(i)]), r.choice([0, 1, 2, -1, 99]), 0]


def m_var(r, d, p):
    vs = [i for i, n in enumerate(d['nodes']) if n['op'] == 'null']
    i = r.choice(vs)
    attrs = d['nodes'][i].setdefault('attrs', {})
    if r.random() < 0.6:
        attrs['__shape__'] = r.choice(SHAPES + TUPLES)
    else:
        attrs['__dtype__'] = r.choice(['0', '1', '2', '3', '4', '5', '6', '7', '12', '99', '-1', 'abc'])


def m_params(r, d, p):
    import numpy as np
    what = r.choice(['unnamed', 'empty', 'drop', 'shape', 'dtype', 'extra', 'nan', 'swap', 'prefix'])
    if what == 'unnamed':
        return list(p.values())
    if what == 'empty':
        return [] if r.random() < 0.5 else {}
    keys = list(p)
    k = r.choice(keys)
    if what == 'drop':
        del p[k]
    elif what == 'shape':
        p[k] = np.zeros(tuple(s + r.choice([-1, 1, 5]) for s in p[k].shape) or (2,), p[k].dtype)
    elif what == 'dtype':
        p[k] = p[k].astype(r.choice([np.float64, np.int32, np.float16, np.uint8]))
    elif what == 'extra':
        p['arg:extra_' + 'e' * r.choice([1, 1000])] = np.ones(3, np.float32)
    elif what == 'nan':
        p[k] = np.full_like(p[k], np.nan)
    elif what == 'swap':
        k2 = r.choice(keys)
        p[k], p[k2] = p[k2], p[k]
    elif what == 'prefix':
        p[k[4:] if k.startswith(('arg:', 'aux:')) else 'arg:' + k] = p.pop(k)
    return p


MUTATORS = [m_tuple_attr, m_internal_op, m_size_attr, m_creation, m_long_name, m_deep_chain, m_random_attr, m_inputs,
            m_var, m_params]


def make_case(models, seed):
    """(model, mutator names, symbol JSON text, params: dict/list of arrays) for one seed: 1 or 2 mutations."""
    r = random.Random(seed)
    model = models[seed % len(models)]
    d = copy.deepcopy(model['json'])
    p = dict(model['params'])
    names = []
    for _ in range(1 if r.random() < 0.8 else 2):
        m = MUTATORS[r.randrange(len(MUTATORS))]
        names.append(m.__name__[2:])
        out = m(r, d, p)
        if out is not None:
            p = out
    return model, names, json.dumps(d), p


def _child(model, text, params, tmp, hybridize, out_fd):
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (TIME_LIMIT, TIME_LIMIT + 5))
    signal.alarm(WALL_LIMIT)
    os.environ['GRAPHC_MAX_GRAPH_BYTES'] = str(BUDGET)
    res = {'outcome': 'ok', 'msg': ''}
    try:
        import graphc as mx
        from graphc.base import GraphcError, GraphcLoadError
        from graphc.gluon import SymbolBlock
        from graphc.serialization import save_ndarrays
        sym, par = os.path.join(tmp, 'm-symbol.json'), os.path.join(tmp, 'm-0000.params')
        with open(sym, 'w') as f:
            f.write(text)
        save_ndarrays(par, params)
        try:
            net = SymbolBlock.imports(sym, ['data'], par)
        except GraphcLoadError as e:
            res = {'outcome': 'load_error', 'msg': str(e)[:300]}
        except GraphcError as e:
            res = {'outcome': 'raw', 'msg': f"{type(e).__name__} at load: {str(e)[:300]}"}
        else:
            try:
                net.hybridize(hybridize)
                net(mx.nd.array(model['input'])).asnumpy()
            except GraphcError as e:
                res = {'outcome': 'run_error', 'msg': str(e)[:300]}
    except MemoryError:
        res = {'outcome': 'memory', 'msg': 'MemoryError'}
    except BaseException as e:  # noqa: B902 -- a raw exception is the failure this tool looks for
        import traceback
        tb = traceback.extract_tb(e.__traceback__)[-1]
        res = {'outcome': 'raw', 'msg': f"{type(e).__name__}: {str(e)[:200]} at {os.path.basename(tb.filename)}:"
                                        f"{tb.lineno}"}
    os.write(out_fd, json.dumps(res).encode()[:60000])
    os._exit(0)


def run_case(model, text, params, hybridize):
    with tempfile.TemporaryDirectory() as tmp:
        rfd, wfd = os.pipe()
        t0 = time.time()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _child(model, text, params, tmp, hybridize, wfd)
        os.close(wfd)
        chunks = []
        while True:
            b = os.read(rfd, 65536)
            if not b:
                break
            chunks.append(b)
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
        dt = time.time() - t0
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGALRM or sig == signal.SIGXCPU:
            return {'outcome': 'timeout', 'msg': f'past {TIME_LIMIT} s of CPU or {WALL_LIMIT} s of wall clock',
                    'seconds': dt}
        if sig == signal.SIGKILL:
            return {'outcome': 'memory', 'msg': 'killed', 'seconds': dt}
        return {'outcome': 'crash', 'msg': f'signal {sig}', 'seconds': dt}
    try:
        res = json.loads(b''.join(chunks))
    except ValueError:
        res = {'outcome': 'crash', 'msg': f'no result (exit status {status})'}
    res['seconds'] = dt
    return res


FAILURES = ('raw', 'crash', 'timeout', 'memory')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--count', type=int, default=2000)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', action='store_true', help='print the summary as one JSON line')
    ap.add_argument('--verbose', action='store_true')
    a = ap.parse_args(argv)
    os.environ.setdefault('GRAPHC_CACHE_DIR', tempfile.mkdtemp(prefix='graphc-mutate-cache-'))
    models = [load_model('mlp'), load_model('lenet_bn')]
    counts, by_mutator, failures, slowest, slowest_cpu = {}, {}, [], 0.0, 0.0
    t0 = time.time()
    for k in range(a.count):
        seed = a.seed + k
        model, names, text, params = make_case(models, seed)
        c0 = os.times()
        res = run_case(model, text, params, hybridize=seed % 2 == 0)
        c1 = os.times()
        res['cpu_s'] = round(c1.children_user + c1.children_system - c0.children_user - c0.children_system, 2)
        slowest_cpu = max(slowest_cpu, res['cpu_s'])
        o = res['outcome']
        counts[o] = counts.get(o, 0) + 1
        for n in names:
            by_mutator.setdefault(n, {}).setdefault(o, 0)
            by_mutator[n][o] += 1
        slowest = max(slowest, res['seconds'])
        if o in FAILURES:
            failures.append({'seed': seed, 'model': model['name'], 'mutations': names, **res})
        if a.verbose:
            print(seed, model['name'], names, o, f"{res['seconds']:.2f}s", res.get('msg', '')[:160], flush=True)
    summary = {'cases': a.count, 'seed': a.seed, 'counts': counts, 'by_mutation': by_mutator,
               'failures': failures[:50], 'slowest_s': round(slowest, 2), 'slowest_cpu_s': slowest_cpu,
               'total_s': round(time.time() - t0, 1),
               'mem_limit': MEM_LIMIT, 'cpu_limit_s': TIME_LIMIT, 'wall_limit_s': WALL_LIMIT}
    print(json.dumps(summary) if a.json else json.dumps(summary, indent=1))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
