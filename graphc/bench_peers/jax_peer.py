"""JAX jit twins of `graphc bench`'s workloads, for worker.py (needs only NumPy and JAX). The training steps are
one jitted function each: forward, mean softmax cross-entropy, grad and the update written in jnp as graphc's
(MXNet's) SGD momentum and Adam. Weights arrive in graphc's collect_params order and layouts (OIHW, (out, in))."""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def dense(ws, h):
    for i in range(0, len(ws), 2):
        h = h @ ws[i].T + ws[i + 1]
        if i + 2 < len(ws):
            h = jax.nn.relu(h)
    return h


def lenet(ws, x):
    h = x
    for i, pool in ((0, True), (2, True), (4, False)):
        h = lax.conv_general_dilated(h, ws[i], (1, 1), 'VALID', dimension_numbers=('NCHW', 'OIHW', 'NCHW'))
        h = jax.nn.relu(h + ws[i + 1][None, :, None, None])
        if pool:
            h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), 'VALID')
    return dense(ws[6:], h.reshape(h.shape[0], -1))


def lstm(ws, x):
    """MXNet's LSTM layer (gates i, f, c, o; zero initial states) over TNC x: the outputs."""
    wi, wh, bi, bh = ws
    hid = wh.shape[1]
    xi = jnp.einsum('tnc,gc->tng', x, wi) + (bi + bh)

    def cell(carry, g):
        h, c = carry
        g = g + h @ wh.T
        i, f, o = jax.nn.sigmoid(g[:, :hid]), jax.nn.sigmoid(g[:, hid:2 * hid]), jax.nn.sigmoid(g[:, 3 * hid:])
        c = f * c + i * jnp.tanh(g[:, 2 * hid:3 * hid])
        h = o * jnp.tanh(c)
        return (h, c), h
    zero = jnp.zeros((x.shape[1], hid), x.dtype)
    return lax.scan(cell, (zero, zero), xi)[1]


def resnet(ws, x, train=False):
    """model_zoo's resnet18_v1(classes=10, thumbnail=True): weights in collect_params order (each block's body,
    then its downsample; BatchNorm gamma, beta, running mean and variance); BatchNorm over the batch's
    statistics when training (biased variance, as MXNet's), else the running ones."""
    it = iter(ws)

    def conv(h, stride, pad):
        return lax.conv_general_dilated(h, next(it), (stride, stride), [(pad, pad)] * 2,
                                        dimension_numbers=('NCHW', 'OIHW', 'NCHW'))

    def bn(h):
        g, b, m, v = next(it), next(it), next(it), next(it)
        if train:
            m, v = h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3))
        s = g / jnp.sqrt(v + 1e-5)
        return h * s[None, :, None, None] + (b - m * s)[None, :, None, None]
    h, cin = conv(x, 1, 1), 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for s in (stride, 1):
            body = bn(conv(jax.nn.relu(bn(conv(h, s, 1))), 1, 1))
            h = jax.nn.relu(body + (bn(conv(h, s, 0)) if s != 1 or cin != cout else h))
            cin = cout
    return dense(list(it), h.mean(axis=(2, 3)))


def chain(ws, x):
    return jnp.tanh(x * 2 + 1) * jax.nn.sigmoid(x) - jax.nn.relu(x) / 3


MODELS = {'mlp': dense, 'lenet': lenet, 'lstm': lstm, 'chain': chain, 'resnet': resnet,
          'resnet-train': lambda ws, x: resnet(ws, x, train=True)}


def loss_fn(model):
    def f(ws, x, y):
        z = model(ws, x)
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], axis=1)[:, 0])
    return f


def sgd(spec):
    lr, mom = spec['lr'], spec.get('momentum', 0.0)

    def update(ws, g, state, t):   # MXNet's sgd_mom_update: v = mom*v - lr*g; w += v
        vel = [mom * v - lr * d for v, d in zip(state[0], g)]
        return [w + v for w, v in zip(ws, vel)], (vel,)
    return update, lambda ws: ([jnp.zeros_like(w) for w in ws],)


def adam(spec, b1=0.9, b2=0.999, eps=1e-8):
    lr = spec['lr']

    def update(ws, g, state, t):   # MXNet's adam_update at step t
        m = [b1 * a + (1 - b1) * d for a, d in zip(state[0], g)]
        v = [b2 * a + (1 - b2) * d * d for a, d in zip(state[1], g)]
        lr_t = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return [w - lr_t * a / (jnp.sqrt(b) + eps) for w, a, b in zip(ws, m, v)], (m, v)
    return update, lambda ws: ([jnp.zeros_like(w) for w in ws], [jnp.zeros_like(w) for w in ws])


def build(spec, arrays):
    model = MODELS[spec['model'] + ('-train' if spec.get('train') and spec['model'] == 'resnet' else '')]
    ws = [jnp.asarray(arrays['w%d' % i]) for i in range(sum(k.startswith('w') for k in arrays))]
    x = jnp.asarray(arrays['x'])
    if not spec.get('train'):
        f = jax.jit(model)
        return lambda: f(ws, x)
    y = jnp.asarray(arrays['y'].astype(np.int32))
    update, init = {'sgd': sgd, 'adam': adam}[spec['opt']](spec)
    grad = jax.value_and_grad(loss_fn(model))

    @jax.jit
    def train_step(ws, state, t, x, y):
        loss, g = grad(ws, x, y)
        ws, state = update(ws, g, state, t)
        return ws, state, loss
    live = {'ws': ws, 'state': init(ws), 't': 0}

    def step():
        live['t'] += 1
        live['ws'], live['state'], loss = train_step(live['ws'], live['state'], jnp.float32(live['t']), x, y)
        return loss
    return step


def value(out):
    return np.asarray(out)


def sync(out):
    out.block_until_ready()
