"""MXNet 1.9 Gluon twins of `graphc bench`'s workloads, for worker.py under the Python of
GRAPHC_BENCH_MXNET_PYTHON (needs only NumPy and mxnet; Python 3.8 syntax). Each model is hybridized with
static_alloc and static_shape (MXNet's fastest CPU path: oneDNN kernels, memory planned once); training uses the
Gluon Trainer as graphc's does. Weights arrive in graphc's collect_params order, which is MXNet's. The same code
runs on graphc's MXNet API (graphc_peer.py binds it with use())."""
import numpy as np

mx = autograd = gluon = nn = None   # the framework: use(module)


def use(module):
    global mx, autograd, gluon, nn
    mx, autograd, gluon, nn = module, module.autograd, module.gluon, module.gluon.nn


def mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(256, activation='relu', in_units=784), nn.Dense(256, activation='relu', in_units=256),
            nn.Dense(10, in_units=256))
    return net


def lenet():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(32, 5, activation='relu', in_channels=1), nn.MaxPool2D(2, 2),
            nn.Conv2D(64, 5, activation='relu', in_channels=32), nn.MaxPool2D(2, 2),
            nn.Conv2D(128, 4, activation='relu', in_channels=64), nn.Flatten(),
            nn.Dense(84, activation='relu', in_units=128), nn.Dense(10, in_units=84))
    return net


def lstm(ws):
    return gluon.rnn.LSTM(ws[1].shape[1], input_size=ws[0].shape[1])


def chain(ws):
    return nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * F.sigmoid(v) - F.relu(v) / 3)


def resnet(ws):
    return gluon.model_zoo.vision.resnet18_v1(classes=10, thumbnail=True)


MODELS = {'mlp': lambda ws: mlp(), 'lenet': lambda ws: lenet(), 'lstm': lstm, 'chain': chain, 'resnet': resnet}


def build(spec, arrays):
    if mx is None:
        import mxnet
        use(mxnet)
    ws = [arrays['w%d' % i] for i in range(sum(k.startswith('w') for k in arrays))]
    net = MODELS[spec['model']](ws)
    params = list(net.collect_params().values())
    for p, w in zip(params, ws):   # dims MXNet infers at the first call (0: ResNet's in_channels) from the weights
        if len(p.shape) == w.ndim and all(a in (0, b) for a, b in zip(p.shape, w.shape)):
            p.shape = w.shape
    net.initialize()
    shapes = [tuple(p.shape) for p in params]
    if shapes != [w.shape for w in ws]:
        raise ValueError('MXNet parameters %s do not match graphc\'s %s' % (shapes, [w.shape for w in ws]))
    for p, w in zip(params, ws):
        p.set_data(mx.nd.array(w))
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.array(arrays['x'])
    if not spec.get('train'):
        return lambda: net(x)
    y = mx.nd.array(arrays['y'].astype(np.float32))
    opt = {'learning_rate': spec['lr']}
    if spec['opt'] == 'sgd':
        opt['momentum'] = spec.get('momentum', 0.0)
    trainer = gluon.Trainer(net.collect_params(), spec['opt'], opt)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(x.shape[0])
        return loss
    return step


def value(out):
    return out.asnumpy()   # (a training step's per-sample losses: the parent takes their mean)


def sync(out):
    mx.nd.waitall()   # the update is queued after the loss: wait for everything
