"""mx.monitor.Monitor on bound executors: outputs, every node's output (monitor_all), arguments, intervals."""
import numpy as np

import graphc as mx


def _executor():
    data = mx.sym.var('data')
    h = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=3, name='fc1'), act_type='relu', name='relu1')
    ex = mx.sym.FullyConnected(h, num_hidden=2, name='fc2').simple_bind(mx.cpu(), data=(4, 5))
    rng = np.random.default_rng(0)
    for a in ex.arg_arrays:
        a[:] = rng.normal(size=a.shape)
    return ex


def test_monitor_all_reports_every_node_with_the_default_statistic():
    ex = _executor()
    mon = mx.mon.Monitor(1, sort=True, monitor_all=True)
    mon.install(ex)
    mon.tic()
    ex.forward()
    res = mon.toc()
    names = [r[1] for r in res]
    assert names == ['data', 'fc1_bias', 'fc1_output', 'fc1_weight', 'fc2_bias', 'fc2_output', 'fc2_weight',
                     'relu1_output']
    x, w1, b1 = (ex.arg_dict[k].asnumpy() for k in ('data', 'fc1_weight', 'fc1_bias'))
    h = np.maximum(x @ w1.T + b1, 0)
    got = float(dict((r[1], r[2]) for r in res)['relu1_output'].strip())
    np.testing.assert_allclose(got, np.linalg.norm(h) / np.sqrt(h.size), rtol=1e-5)


def test_interval_pattern_and_custom_statistic(caplog):
    ex = _executor()
    mon = mx.monitor.Monitor(2, stat_func=lambda a: mx.nd.max(a), pattern='.*weight|.*output')
    mon.install(ex)
    seen = []
    for _ in range(3):
        mon.tic()
        ex.forward()
        seen.append([r[1] for r in mon.toc()])
    assert seen == [['fc2_output', 'fc1_weight', 'fc2_weight'], [], ['fc2_output', 'fc1_weight', 'fc2_weight']]
    mon.tic()  # step 3: not a multiple of the interval
    assert mon.toc() == []
    out = dict((r[1], float(r[2])) for r in (mon.tic(), ex.forward(), mon.toc())[2])
    assert np.float32(out['fc1_weight']) == ex.arg_dict['fc1_weight'].asnumpy().max()  # (printed as float32)
