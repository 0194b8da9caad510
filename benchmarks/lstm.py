"""LSTM workloads: the layer forward (input 64, hidden 256, batch 32, 50 steps) and the char-LSTM training
step of examples/char_lstm.py (embedding 64, hidden 256, batch 32, 32 steps, vocabulary 65, Adam, clipping),
with the LSTM layer and with LSTMCells unrolled (--unroll), each eager vs hybridized. Both run the fused RNN op, whose float32 time loops are compiled (runtime/rnn.py) in
either mode; the '+numpy-loops' variants run the op's NumPy reference loops instead (the rest unchanged), so
the gain of the compiled loops shows on its own.

    python benchmarks/lstm.py [--reps 20] [--only lstm-forward,char-lstm-train] [--json out.json]

Each function returns {'times': {variant: median seconds}} like graphc/bench.py's workloads (variants run
interleaved so machine noise hits all alike; outputs are checked to agree first).
"""
import argparse
import json
import os
import sys

import numpy as np

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.bench import _synced, _torch, report, timeit
from graphc.runtime import backend


def _numpy_loops(f):
    """f with the fused RNN op on its NumPy reference loops (the rest of graphc unchanged)."""
    from graphc.runtime import rnn

    def g():
        real = rnn._usable
        rnn._usable = lambda *a: False
        try:
            return f()
        finally:
            rnn._usable = real
    return g


def lstm_forward(reps, progress=None, steps=50, batch=32, inp=64, hidden=256):
    """gluon.rnn.LSTM(hidden) forward on a (steps, batch, inp) TNC input, eager vs hybridized, each also with the
    op's NumPy loops; outputs checked to agree."""
    gc.random.seed(0)
    eager = gluon.rnn.LSTM(hidden, input_size=inp)
    eager.initialize(gc.init.Xavier())
    hyb = gluon.rnn.LSTM(hidden, input_size=inp, params=eager.collect_params())
    hyb.hybridize()
    x = nd.random.normal(shape=(steps, batch, inp))
    fns = {'eager': _synced(lambda: eager(x)), 'hybridized': _synced(lambda: hyb(x))}
    fns.update({k + '+numpy-loops': _numpy_loops(fns[k]) for k in ('eager', 'hybridized')})
    torch = _torch()
    if torch is not None:
        from graphc.bench import _torch_infer, torch_lstm
        p = eager.collect_params()
        model = torch_lstm(torch, [p[eager.prefix + f'l0_{k}'].data().asnumpy()
                                   for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias')])
        fns['pytorch'] = _torch_infer(torch, lambda t: model(t), torch.from_numpy(x.asnumpy()))
    ref = fns['eager+numpy-loops']().asnumpy()
    for k, f in fns.items():
        got = f()
        np.testing.assert_allclose(got.numpy() if k == 'pytorch' else got.asnumpy(), ref, rtol=1e-4, atol=1e-5,
                                   err_msg=f"lstm_forward: {k}")
    return {'times': timeit(fns, reps, progress=progress)}


def char_lstm_train(reps, progress=None, batch=32, seq=32, hidden=256, vocab=65, cells=False):
    """One training step of examples/char_lstm.py's model (forward, loss, backward, gradient clipping, Adam) on
    random characters, eager vs hybridized, from equal weights (each variant updates its own copy of the model).
    The layer model (CharLM) adds each mode on the op's NumPy loops; the cell model (CellLM, `--unroll`: an
    LSTMCell stepped over time) adds hybridized with the fuse_rnn pass off, i.e. the unrolled steps compiled."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'examples'))
    from char_lstm import CellLM, CharLM
    rng = np.random.default_rng(0)
    x = nd.array(rng.integers(0, vocab, (batch, seq)), dtype='float32')
    y = nd.array(rng.integers(0, vocab, (batch, seq)), dtype='int32')
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def make(hybridize, fuse=True):
        gc.random.seed(0)
        net = (CellLM if cells else CharLM)(vocab, hidden=hidden, prefix='charlm_')
        net.initialize(gc.init.Xavier())
        if hybridize:
            net.hybridize()
        trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-4})
        params = [p for p in net.collect_params().values() if p.grad_req != 'null']
        h, c = nd.zeros((1, batch, hidden)), nd.zeros((1, batch, hidden))
        traced = net if fuse else _without_fuse_rnn(net)

        def step():
            with autograd.record():
                out, _, _ = traced(x, h, c)
                loss = loss_fn(out.reshape((-1, vocab)), y.reshape((-1,))).mean()
            loss.backward()
            gluon.utils.clip_global_norm([q.grad() for q in params], 5.0)
            trainer.step(1)
            return loss
        return step
    fns = {'eager': _synced(make(False)), 'hybridized': _synced(make(True))}
    if cells:
        fns['hybridized-fuse_rnn-off'] = _synced(make(True, fuse=False))
    else:
        fns.update({'eager+numpy-loops': _numpy_loops(_synced(make(False))),
                    'hybridized+numpy-loops': _numpy_loops(_synced(make(True)))})
    torch = _torch()
    if torch is not None and not cells:
        fns['pytorch'] = _torch_char_lstm(torch, x, y, vocab, hidden)
    first = {k: _scalar(f()) for k, f in fns.items()}
    if max(first.values()) - min(first.values()) > 1e-4 * max(1.0, abs(first['eager'])):
        raise AssertionError(f"char_lstm_train: the variants disagree on the first step's loss: {first}")
    return {'times': timeit(fns, reps, progress=progress)}


def _scalar(loss):
    return float(loss.item() if hasattr(loss, 'item') else loss.asscalar())


def _torch_char_lstm(torch, x, y, vocab, hidden):
    """The layer model's step in PyTorch (Embedding, nn.LSTM, Linear; cross-entropy, clip_grad_norm_, Adam)
    from a graphc model's initial weights: torch's gate order (i, f, g, o) is MXNet's (i, f, c, o)."""
    from graphc.bench import torch_load
    gc.random.seed(0)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'examples'))
    from char_lstm import CharLM
    net = CharLM(vocab, hidden=hidden, prefix='charlm_')
    net.initialize(gc.init.Xavier())
    p = {k[len('charlm_'):]: v.data().asnumpy() for k, v in net.collect_params().items()}
    emb = p['embedding0_weight']

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(*emb.shape)
            self.lstm = torch.nn.LSTM(emb.shape[1], hidden, batch_first=True)
            self.out = torch.nn.Linear(hidden, vocab)

        def forward(self, t):
            return self.out(self.lstm(self.embed(t))[0])
    model = torch_load(torch, Twin(), [emb] + [p[f'lstm0_l0_{k}'] for k in ('i2h_weight', 'h2h_weight', 'i2h_bias',
                                                                           'h2h_bias')]
                       + [p['dense0_weight'], p['dense0_bias']])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    xt, yt = torch.from_numpy(x.asnumpy().astype(np.int64)), torch.from_numpy(y.asnumpy().astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt).reshape(-1, vocab), yt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return loss
    return step


def _without_fuse_rnn(net):
    """net, whose first call (the trace) runs with GRAPHC_DISABLE_PASSES=fuse_rnn."""
    def call(*args):
        if net.trace_count:
            return net(*args)
        old = os.environ.get('GRAPHC_DISABLE_PASSES')
        os.environ['GRAPHC_DISABLE_PASSES'] = 'fuse_rnn'
        try:
            return net(*args)
        finally:
            if old is None:
                del os.environ['GRAPHC_DISABLE_PASSES']
            else:
                os.environ['GRAPHC_DISABLE_PASSES'] = old
    return call


WORKLOADS = {'lstm-forward': ('LSTM layer forward, input 64, hidden 256, batch 32, 50 steps', lstm_forward),
             'char-lstm-train': ('char-LSTM training step: embed 64, LSTM 256, batch 32 x 32 steps, Adam',
                                 char_lstm_train),
             'char-lstm-train-cells': ('the same with the LSTM as an LSTMCell unrolled over the 32 steps '
                                       '(char_lstm.py --unroll)', lambda reps, progress=None:
                                       char_lstm_train(reps, progress, cells=True))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--reps', type=int, default=20)
    p.add_argument('--only', default='', help='comma-separated workload keys: ' + ', '.join(WORKLOADS))
    p.add_argument('--json', help='write the results here')
    args = p.parse_args(argv)
    keys = [k for k in args.only.split(',') if k] or list(WORKLOADS)
    bad = [k for k in keys if k not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {bad}; choose from {list(WORKLOADS)}")
    if backend.current() is backend.interp:
        p.error("GRAPHC_BACKEND=interp: the compiled backend is off, nothing to compare")
    results = {}
    for k in keys:
        name, fn = WORKLOADS[k]
        t = fn(args.reps)['times']
        results[k] = {'name': name, 'times': t, 'ratios': {f'{v}/hybridized': t[v] / t['hybridized'] for v in t}}
        print(f"{k}: {name}")
        for v, sec in t.items():
            print(f"  {v:<24}{sec * 1e3:9.2f} ms  {sec / t['hybridized']:5.2f}x hybridized")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report(results, reps=args.reps), f, indent=2)
    return results


if __name__ == '__main__':
    main()
