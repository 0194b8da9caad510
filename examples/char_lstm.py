"""A character-level LSTM language model on Tiny Shakespeare (bundled in data/tinyshakespeare).

Truncated backpropagation through time: the text is cut into --batch-size parallel streams, each
step trains on the next --seq-len characters and carries the LSTM state on (detached). Hybridized
training with a progress bar (loss, perplexity, chars/s), a sample at --temperature every
--sample-every steps, checkpoints every --checkpoint-every steps that --resume continues from exactly
(weights, Adam state, the carried LSTM state and the RNG: the same parameters as an uninterrupted run), and
at the end the validation perplexity next to the unigram baseline (a model that knows only the
character frequencies). --unroll writes the LSTM as cells stepped over time (Flux's style); hybridize
then runs the steps as the same fused op the layer uses.

    python examples/char_lstm.py --max-steps 500 [--unroll] [--no-hybridize]
"""
import argparse
import json
import math
import os
import time

import numpy as np

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn, rnn
from graphc.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, 'data', 'tinyshakespeare', 'input.txt')


class CharLM(gluon.HybridBlock):
    """Embedding -> LSTM -> Dense over the vocabulary; returns logits and the new LSTM state."""

    def __init__(self, vocab, embed=64, hidden=256, layers=1, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.embed = nn.Embedding(vocab, embed)
            self.lstm = rnn.LSTM(hidden, num_layers=layers, layout='NTC', input_size=embed)
            self.out = nn.Dense(vocab, flatten=False, in_units=hidden)

    def hybrid_forward(self, F, x, h, c):
        y, (h2, c2) = self.lstm(self.embed(x), [h, c])
        return self.out(y), h2, c2


class CellLM(gluon.HybridBlock):
    """CharLM written the way Flux users write it: LSTMCells stepped over the sequence (cell.unroll), same
    inputs and outputs. Run eagerly, every step is a handful of small ops; hybridized, the fuse_rnn pass
    (passes/recurrent.py) turns each layer's unrolled steps back into one fused RNN op."""

    def __init__(self, vocab, embed=64, hidden=256, layers=1, **kwargs):
        super().__init__(**kwargs)
        self._layers = layers
        with self.name_scope():
            self.embed = nn.Embedding(vocab, embed)
            self.cells = rnn.SequentialRNNCell()
            with self.cells.name_scope():
                for i in range(layers):
                    self.cells.add(rnn.LSTMCell(hidden, input_size=embed if i == 0 else hidden))
            self.out = nn.Dense(vocab, flatten=False, in_units=hidden)

    def hybrid_forward(self, F, x, h, c):
        begin = [s for i in range(self._layers) for s in (h[i], c[i])]
        y, states = self.cells.unroll(x.shape[1], self.embed(x), begin, layout='NTC', merge_outputs=True)
        return self.out(y), F.stack(*states[0::2], axis=0), F.stack(*states[1::2], axis=0)


def load_text(path=TEXT):
    with open(path, encoding='ascii') as f:
        text = f.read()
    return text, sorted(set(text)), np.frombuffer(text.encode('ascii'), np.uint8)


def encode(raw, chars):
    table = np.zeros(256, np.int32)
    table[np.frombuffer(''.join(chars).encode('ascii'), np.uint8)] = np.arange(len(chars))
    return table[raw]


def streams(ids, batch):
    """(batch, n) parallel streams of consecutive characters."""
    n = len(ids) // batch
    return ids[:n * batch].reshape(batch, n)


def unigram_perplexity(train_ids, val_ids, vocab):
    p = np.bincount(train_ids, minlength=vocab) + 1.0
    p /= p.sum()
    return float(np.exp(-np.log(p[val_ids]).mean()))


def evaluate(net, data, seq_len, hidden, layers):
    """Perplexity over the validation streams, state carried across windows."""
    batch = data.shape[0]
    h, c = nd.zeros((layers, batch, hidden)), nd.zeros((layers, batch, hidden))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    total, count = 0.0, 0
    with autograd.predict_mode():
        for s in range(0, data.shape[1] - 1 - seq_len, seq_len):
            x = nd.array(data[:, s:s + seq_len], dtype='float32')
            y = nd.array(data[:, s + 1:s + 1 + seq_len], dtype='int32')
            out, h, c = net(x, h, c)
            total += float(loss_fn(out.reshape((-1, out.shape[-1])), y.reshape((-1,))).sum().asscalar())
            count += y.size
    return math.exp(total / max(count, 1))


def sample(net, chars, hidden, layers, length=200, temperature=0.8, prime='ROMEO:'):
    """Generate text one character at a time (the same network, batch 1, sequence length 1)."""
    rs = gc.random.generator()
    h, c = nd.zeros((layers, 1, hidden)), nd.zeros((layers, 1, hidden))
    out_text = prime
    x = None
    with autograd.predict_mode():
        for ch in prime:
            x = nd.array([[chars.index(ch)]], dtype='float32')
            logits, h, c = net(x, h, c)
        for _ in range(length):
            z = logits.asnumpy()[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            p /= p.sum()
            k = int(rs.choice(len(chars), p=p))
            out_text += chars[k]
            logits, h, c = net(nd.array([[k]], dtype='float32'), h, c)
    return out_text


def _kind(net):
    return 'cells' if isinstance(net, CellLM) else 'layer'


def save_checkpoint(d, net, trainer, step, pos, h, c):
    """Parameters, optimizer state, the carried LSTM state and the RNG: resuming continues exactly."""
    os.makedirs(d, exist_ok=True)
    net.save_parameters(os.path.join(d, 'char_lstm.params'))
    trainer.save_states(os.path.join(d, 'char_lstm.states'))
    nd.save(os.path.join(d, 'char_lstm.carry'), {'h': h, 'c': c})
    state = gc.random.get_state()
    with open(os.path.join(d, 'char_lstm.json'), 'w') as f:
        json.dump({'step': step, 'pos': pos, 'rng': state, 'model': _kind(net)}, f)


def load_checkpoint(d, net, trainer):
    """(step, position in the streams, carried (h, c) or None) of the checkpoint in d; (0, 0, None) if none."""
    path = os.path.join(d, 'char_lstm.json')
    if not os.path.exists(path):
        return 0, 0, None
    with open(path) as f:
        meta = json.load(f)
    if meta.get('model', 'layer') != _kind(net):
        flag = '--unroll' if meta.get('model') == 'cells' else 'no --unroll'
        raise SystemExit(f"{d}: this checkpoint holds the {meta.get('model', 'layer')} model; resume with {flag}, "
                         "or choose another --checkpoint-dir")
    net.load_parameters(os.path.join(d, 'char_lstm.params'))
    trainer.load_states(os.path.join(d, 'char_lstm.states'))
    gc.random.set_state(meta['rng'])
    carry = nd.load(os.path.join(d, 'char_lstm.carry'))
    return meta['step'], meta['pos'], (carry['h'], carry['c'])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--max-steps', type=int, default=2000)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--seq-len', type=int, default=32)
    p.add_argument('--hidden', type=int, default=256)
    p.add_argument('--layers', type=int, default=1)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--clip', type=float, default=5.0, help='gradient norm clipping')
    p.add_argument('--temperature', type=float, default=0.8)
    p.add_argument('--sample-every', type=int, default=500)
    p.add_argument('--checkpoint-every', type=int, default=250)
    p.add_argument('--checkpoint-dir', default=None, help='where checkpoints go (none: no checkpoints)')
    p.add_argument('--resume', action='store_true', help='continue from the checkpoint in --checkpoint-dir')
    p.add_argument('--no-hybridize', action='store_true')
    p.add_argument('--unroll', action='store_true',
                   help='write the LSTM as LSTMCells stepped over the sequence (Flux style) instead of the fused '
                        'layer; hybridize fuses the steps back into one RNN op')
    p.add_argument('--chars', type=int, default=0, help='use only the first N characters (quick runs)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', help='write the results here')
    args = p.parse_args(argv)

    gc.random.seed(args.seed)
    text, chars, raw = load_text()
    ids = encode(raw[:args.chars] if args.chars else raw, chars)
    split = int(len(ids) * 0.9)
    train, val = streams(ids[:split], args.batch_size), streams(ids[split:], 8)
    vocab = len(chars)
    model = CellLM if args.unroll else CharLM
    net = model(vocab, hidden=args.hidden, layers=args.layers, prefix='charlm_')  # stable names: checkpoints load anywhere
    net.initialize(gc.init.Xavier())
    if not args.no_hybridize:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': args.lr})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    B, T, H, L = args.batch_size, args.seq_len, args.hidden, args.layers
    step, pos, carry = 0, 0, None
    if args.resume and args.checkpoint_dir:
        step, pos, carry = load_checkpoint(args.checkpoint_dir, net, trainer)
        print(f"resumed from step {step}")
    h, c = carry or (nd.zeros((L, B, H)), nd.zeros((L, B, H)))
    bar = Progress(total=args.max_steps, desc='train', unit='step')
    bar.update(step)
    t0, seen, smooth = time.perf_counter(), 0, None
    params = [p for p in net.collect_params().values() if p.grad_req != 'null']
    while step < args.max_steps:
        if pos + T + 1 > train.shape[1]:  # an epoch is done: start the streams again with a zero state
            pos, h, c = 0, nd.zeros((L, B, H)), nd.zeros((L, B, H))
        x = nd.array(train[:, pos:pos + T], dtype='float32')
        y = nd.array(train[:, pos + 1:pos + 1 + T], dtype='int32')
        with autograd.record():
            out, h, c = net(x, h.detach(), c.detach())
            loss = loss_fn(out.reshape((-1, vocab)), y.reshape((-1,))).mean()
        loss.backward()
        gluon.utils.clip_global_norm([q.grad() for q in params], args.clip)
        trainer.step(1)
        pos += T
        step += 1
        seen += B * T
        lv = float(loss.asscalar())
        smooth = lv if smooth is None else 0.95 * smooth + 0.05 * lv
        bar.set_postfix(loss=round(smooth, 3), ppl=round(math.exp(smooth), 2),
                        chars_per_s=int(seen / (time.perf_counter() - t0)))
        bar.update(1)
        if args.sample_every and step % args.sample_every == 0:
            print(f"\n--- sample at step {step} (temperature {args.temperature}):\n"
                  f"{sample(net, chars, H, L, temperature=args.temperature)}\n---", flush=True)
        if args.checkpoint_dir and step % args.checkpoint_every == 0:
            save_checkpoint(args.checkpoint_dir, net, trainer, step, pos, h, c)
    bar.close()
    speed = seen / max(time.perf_counter() - t0, 1e-9)   # training only (a resumed run counts its own steps)
    val_ppl = evaluate(net, val, T, H, L)
    base = unigram_perplexity(ids[:split], ids[split:], vocab)
    text_out = sample(net, chars, H, L, temperature=args.temperature)
    print(f"validation perplexity {val_ppl:.2f} (unigram baseline {base:.2f}) after {step} steps, "
          f"{speed:.0f} chars/s")
    print(f"sample (temperature {args.temperature}):\n{text_out}")
    res = {'steps': step, 'val_perplexity': val_ppl, 'unigram_perplexity': base, 'sample': text_out,
           'chars_per_second': speed, 'model': 'cells' if args.unroll else 'layer'}
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    main()
