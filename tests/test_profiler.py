"""graphc.profiler (MXNet 1.9's mx.profiler): what runs while recording is in the Chrome trace and the aggregate
table with the right counts, a profiled plan computes what an unprofiled one does, and off records nothing."""
import json

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd, profiler
from graphc.base import GraphcError
from graphc.gluon import nn


@pytest.fixture(autouse=True)
def fresh(tmp_path):
    cfg = dict(profiler._config)
    profiler.set_config(filename=str(tmp_path / 'profile.json'))
    yield
    profiler.set_state('stop')
    profiler.dumps(reset=True)
    del profiler._events[:]
    profiler._folded[0] = 0
    profiler._config.update(cfg)


def mlp(hybrid=True):
    mx.random.seed(0)
    net = nn.HybridSequential()
    net.add(nn.Dense(32, activation='relu'), nn.Dense(8))
    net.initialize()
    x = nd.random.normal(shape=(4, 16))
    net(x)
    if hybrid:
        net.hybridize()
        net(x)
    return net, x


def trace():
    profiler.dump()
    with open(profiler._config['filename']) as f:
        return json.load(f)   # valid JSON, or this fails


def spans(doc):
    return [e for e in doc['traceEvents'] if e['ph'] == 'X']


def test_eager_ops_in_trace_and_table():
    x = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    profiler.set_config(profile_all=True, aggregate_stats=True)
    profiler.set_state('run')
    for _ in range(3):
        y = nd.relu(x - 2)
    z = nd.dot(y, y, transpose_b=True)
    profiler.set_state('stop')
    np.testing.assert_allclose(z.asnumpy(), np.maximum(x.asnumpy() - 2, 0) @ np.maximum(x.asnumpy() - 2, 0).T)
    stats = json.loads(profiler.dumps(format='json'))
    ops = stats['Time']['operator']
    assert {k: v['Count'] for k, v in ops.items()} == {'relu': 3, '_minus_scalar': 3, 'dot': 1}
    for v in ops.values():
        assert 0 < v['Min'] <= v['Avg'] <= v['Max'] <= v['Total'] and v['Total'] == pytest.approx(v['Avg'] * v['Count'])
    assert stats['Unit'] == {'Time': 'ms', 'Memory': 'kB'} and 'Memory' in stats
    doc = trace()
    ev = spans(doc)
    assert sorted(e['name'] for e in ev) == sorted(['relu'] * 3 + ['_minus_scalar'] * 3 + ['dot'])
    assert all(e['cat'] == 'operator' and e['dur'] > 0 and isinstance(e['ts'], float) for e in ev)
    assert [e['name'] for e in ev[:2]] == ['_minus_scalar', 'relu']   # in the order they ran
    assert doc['displayTimeUnit'] == 'ms' and any(e['ph'] == 'M' for e in doc['traceEvents'])
    table = profiler.dumps()
    row = [ln.split() for ln in table.splitlines() if ln.startswith('relu')][0]
    assert row[1] == '3' and float(row[2]) == pytest.approx(ops['relu']['Total'], abs=1e-4)
    assert 'operator' in table.splitlines() and 'Total Count' in table
    assert spans(trace()) == []   # dump() wrote those events out; the stats keep them
    assert json.loads(profiler.dumps(format='json', reset=True))['Time']['operator']['dot']['Count'] == 1
    assert json.loads(profiler.dumps(format='json'))['Time'] == {}


def test_hybridized_native_steps_are_timed_one_by_one_and_agree():
    net, x = mlp()
    want = net(x).asnumpy()
    profiler.set_state('run')
    outs = [net(x).asnumpy() for _ in range(4)]
    profiler.set_state('stop')
    for o in outs:   # the segment run step by step computes what one call computes
        np.testing.assert_array_equal(o, want)
    native = json.loads(profiler.dumps(format='json'))['Time']['native step']
    assert native == {k: native[k] for k in ('Fused(FullyConnected>Activation)', 'FullyConnected')}
    assert all(v['Count'] == 4 for v in native.values())
    ev = [e for e in spans(trace()) if e['cat'] == 'native step']
    assert len(ev) == 8 and len({e['args']['node'] for e in ev}) == 2   # the two steps' node names


def test_python_steps_and_backward_ops(monkeypatch):
    monkeypatch.setenv('GRAPHC_NATIVE', '0')   # every plan step from Python
    net, x = mlp()
    want = net(x).asnumpy()
    profiler.set_state('run')
    np.testing.assert_array_equal(net(x).asnumpy(), want)
    profiler.set_state('stop')
    py = json.loads(profiler.dumps(format='json', reset=True))['Time']['python step']
    assert set(py) == {'Fused(FullyConnected>Activation)', 'FullyConnected'} and all(v['Count'] == 1 for v in py.values())
    eager, x = mlp(hybrid=False)
    eager[0].weight.grad_req = 'write'
    profiler.set_state('run')
    with autograd.record():
        loss = eager(x).sum()
    loss.backward()
    profiler.set_state('stop')
    ops = json.loads(profiler.dumps(format='json'))['Time']['operator']
    assert ops['FullyConnected']['Count'] == 2 and ops['Activation']['Count'] == 1 and 'sum' in ops
    assert len(ops) > 4   # the backward's ops too


def test_state_pause_and_flags():
    x = nd.ones((3,))
    with pytest.raises(GraphcError, match="state must be 'run' or 'stop'"):
        profiler.set_state('running')
    with pytest.raises(GraphcError, match='unknown setting'):
        profiler.set_config(profile_everything=True)
    with pytest.raises(GraphcError, match='dumps: sort_by'):
        profiler.dumps(sort_by='name')
    with pytest.raises(GraphcError, match="format must be 'table' or 'json'"):
        profiler.dumps(format='csv')
    assert profiler.get_state() == 'stop' and not profiler.imperative and not profiler.symbolic
    profiler.set_state('run')
    assert profiler.get_state() == 'run' and profiler.imperative and profiler.symbolic
    nd.exp(x)
    profiler.pause()
    nd.sin(x)
    assert not profiler.imperative and profiler.get_state() == 'run'
    profiler.resume()
    nd.cos(x)
    profiler.set_config(profile_imperative=False, profile_symbolic=True)   # flags change while running
    nd.tan(x)
    assert not profiler.imperative and profiler.symbolic
    profiler.set_config(profile_all=True)
    nd.abs(x)
    profiler.set_state('stop')
    nd.sqrt(x)
    assert [e['name'] for e in spans(trace())] == ['exp', 'cos', 'abs']


def test_off_records_nothing():
    net, x = mlp()
    net(x)
    nd.relu(x)
    with autograd.record():
        net(x)
    assert profiler._events == [] and json.loads(profiler.dumps(format='json'))['Time'] == {}
    assert spans(trace()) == []


def test_sorting():
    x = nd.ones((64, 64))
    profiler.set_state('run')
    for _ in range(5):
        nd.relu(x)
    nd.dot(x, x)
    profiler.set_state('stop')
    for key, field in (('count', 'Count'), ('total', 'Total'), ('avg', 'Avg'), ('min', 'Min'), ('max', 'Max')):
        for asc in (False, True):
            vals = [v[field] for v in json.loads(profiler.dumps(format='json', sort_by=key, ascending=asc))
                    ['Time']['operator'].values()]
            assert vals == sorted(vals, reverse=not asc), (key, asc)
    names = [ln.split()[0] for ln in profiler.dumps(sort_by='count', ascending=True).splitlines()
             if ln.startswith(('relu', 'dot'))]
    assert names == ['dot', 'relu']


def test_user_objects_and_scope():
    dom = profiler.Domain('my')
    task, frame, counter, marker = dom.new_task('load'), dom.new_frame('iter'), dom.new_counter('n', 1), \
        dom.new_marker('here')
    profiler.set_state('run')
    task.start()
    with profiler.scope('net:'):
        nd.relu(nd.ones((2,)))
        with profiler.scope('inner:', append_mode=True):
            nd.exp(nd.ones((2,)))
    task.stop()
    with frame:
        counter += 4
        counter -= 2
        counter.increment()
    marker.mark('thread')
    ev = profiler.Event('whole')
    ev.start()
    ev.stop()
    with pytest.raises(GraphcError, match="Task 'load' stopped before it started"):
        task.stop()
    with pytest.raises(GraphcError, match='scope must be'):
        marker.mark('galaxy')
    profiler.set_state('stop')
    dom.new_marker('after').mark()   # not recorded: stopped
    doc = trace()
    by = {e['name']: e for e in doc['traceEvents'] if e['ph'] != 'M' and e['name'] != 'n'}
    assert {'load', 'iter', 'relu', 'exp', 'here', 'whole'} <= set(by) and 'after' not in by
    assert by['load']['cat'] == 'my' and by['load']['dur'] >= by['relu']['dur']
    assert by['load']['ts'] <= by['relu']['ts'] and by['relu']['args']['scope'] == 'net:'
    assert by['exp']['args']['scope'] == 'net:inner:' and by['whole']['cat'] == 'event'
    assert by['here']['ph'] == 'i' and by['here']['s'] == 't'
    counts = [e['args']['n'] for e in doc['traceEvents'] if e['name'] == 'n']
    assert counts == [5, 3, 4] and counter.value == 4   # (the 1 it started with was set while stopped)
    assert 'my' in json.loads(profiler.dumps(format='json'))['Time']


def test_continuous_dump_keeps_every_dumped_event_in_the_file():
    profiler.set_config(profile_imperative=True, continuous_dump=True)
    profiler.set_state('run')
    names = []
    for i in range(3):
        nd.ones((3,)) + i
        profiler.dump(False)
        with open(profiler._config['filename']) as f:
            names.append([e['name'] for e in spans(json.load(f))])
    assert [n.count('_plus_scalar') for n in names] == [1, 2, 3]  # the file grows with each dump
    profiler.set_config(continuous_dump=False)
    nd.ones((3,)) + 1
    assert [e['name'] for e in spans(trace())].count('_plus_scalar') == 1  # without: the events since the last


def test_custom_op_time_is_attributed_to_its_op_type():
    class Twice(mx.operator.CustomOp):
        def forward(self, is_train, req, in_data, out_data, aux):
            self.assign(out_data[0], req[0], in_data[0] * 2)

        def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
            self.assign(in_grad[0], req[0], out_grad[0] * 2)

    @mx.operator.register('ProfTwice')
    class TwiceProp(mx.operator.CustomOpProp):
        def __init__(self):
            super().__init__(need_top_grad=True)

        def list_arguments(self):
            return ['data']

        def list_outputs(self):
            return ['output']

        def infer_shape(self, in_shape):
            return [in_shape[0]], [in_shape[0]], []

        def create_operator(self, ctx, shapes, dtypes):
            return Twice()

    profiler.set_config(profile_imperative=True, aggregate_stats=True)
    profiler.set_state('run')
    x = nd.ones((4,))
    x.attach_grad()
    with autograd.record():
        y = nd.Custom(x, op_type='ProfTwice')
    y.backward()
    profiler.set_state('stop')
    stats = json.loads(profiler.dumps(format='json'))['Time']
    assert {'ProfTwice::pure_python', '_backward_ProfTwice::pure_python'} <= set(stats['Custom Operator'])
    assert 'Custom' not in stats.get('operator', {}) and 'ProfTwice::_mul_scalar' in stats['Custom Operator']
    assert np.allclose(x.grad.asnumpy(), 2)
