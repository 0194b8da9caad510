"""PyTorch twins of `graphc bench`'s workloads: eager, or torch.compile (inductor) with spec['compile']. For
worker.py (needs only NumPy and torch), so torch's thread pool lives in its own process, not in graphc's (with
torch loaded there, graphc's batch-1 MLP took 0.11-0.13 ms instead of 0.04-0.08); bench.py's own torch column
(plain `graphc bench`) uses the same builders. Each builder takes the torch module and graphc's weights in
collect_params order (the layouts are torch's: OIHW, (out, in)). A training step compiles the model, forward and
backward; the optimizer stays torch's own."""
import numpy as np


def torch_load(torch, model, params, buffers=()):
    """Copy graphc's weights into a torch model (parameters() order: the same layouts) and `buffers` into its
    BatchNorm running statistics (running_mean, running_var per BatchNorm, in order)."""
    ps = list(model.parameters())
    bs = [b for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for b in (m.running_mean, m.running_var)]
    for what, have, want in (('parameters', ps, params), ('running statistics', bs if buffers else [], buffers)):
        if [tuple(p.shape) for p in have] != [tuple(np.shape(a)) for a in want]:
            raise ValueError(f"torch model's {what} {[tuple(p.shape) for p in have]} do not match graphc's "
                             f"{[np.shape(a) for a in want]}")
    with torch.no_grad():
        for p, a in zip(ps + bs, list(params) + list(buffers)):
            p.copy_(torch.from_numpy(np.ascontiguousarray(a)))
    return model


def torch_mlp(torch, params):
    L = torch.nn
    return torch_load(torch, L.Sequential(L.Linear(784, 256), L.ReLU(), L.Linear(256, 256), L.ReLU(),
                                          L.Linear(256, 10)), params)


def torch_lenet(torch, params):
    L = torch.nn
    return torch_load(torch, L.Sequential(L.Conv2d(1, 32, 5), L.ReLU(), L.MaxPool2d(2, 2), L.Conv2d(32, 64, 5),
                                          L.ReLU(), L.MaxPool2d(2, 2), L.Conv2d(64, 128, 4), L.ReLU(), L.Flatten(),
                                          L.Linear(128, 84), L.ReLU(), L.Linear(84, 10)), params)


def torch_lstm(torch, params):
    """torch.nn.LSTM with graphc's weights: torch's gate order (i, f, g, o) is MXNet's (i, f, c, o)."""
    wi, wh, bi, bh = params
    m = torch_load(torch, torch.nn.LSTM(wi.shape[1], wh.shape[1]), [wi, wh, bi, bh])
    return lambda x: m(x)[0]


def torch_resnet18(torch, params, buffers=()):
    """model_zoo.vision.resnet18_v1(classes=10, thumbnail=True) in torch: its trainable parameters in graphc's
    order, and the BatchNorm running statistics where given."""
    L = torch.nn

    class Block(L.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = L.Sequential(L.Conv2d(cin, cout, 3, stride, 1, bias=False), L.BatchNorm2d(cout), L.ReLU(),
                                     L.Conv2d(cout, cout, 3, 1, 1, bias=False), L.BatchNorm2d(cout))
            self.down = L.Sequential(L.Conv2d(cin, cout, 1, stride, bias=False), L.BatchNorm2d(cout)) \
                if stride != 1 or cin != cout else None

        def forward(self, x):
            return torch.relu(self.body(x) + (self.down(x) if self.down is not None else x))
    blocks, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    return torch_load(torch, L.Sequential(L.Conv2d(3, 64, 3, 1, 1, bias=False), *blocks, L.AdaptiveAvgPool2d(1),
                                          L.Flatten(), L.Linear(512, 10)), params, buffers)


def torch_infer(torch, model, x):
    def run():
        with torch.no_grad():
            return model(x)
    return run


def torch_step(torch, model, opt, x, y):
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def chain(torch, t):
    return torch.tanh(t * 2 + 1) * torch.sigmoid(t) - torch.relu(t) / 3


def build(spec, arrays):
    """The twin of spec (bench_peers' spec; 'aux': the indices of the BatchNorm running statistics among the
    weights, ResNet's; 'compile': torch.compile it) from arrays w0, w1, ..., x, y."""
    import torch
    ws = [arrays['w%d' % i] for i in range(sum(k.startswith('w') for k in arrays))]
    x = torch.from_numpy(arrays['x'])
    wrap = torch.compile if spec.get('compile') else (lambda f: f)
    if spec['model'] == 'chain':
        f = wrap(lambda t: chain(torch, t))
        return lambda: f(x)
    if spec['model'] == 'resnet':
        aux = set(spec.get('aux', ()))
        model = torch_resnet18(torch, [w for i, w in enumerate(ws) if i not in aux], [ws[i] for i in sorted(aux)])
    else:
        model = {'mlp': torch_mlp, 'lenet': torch_lenet, 'lstm': torch_lstm}[spec['model']](torch, ws)
    if not spec.get('train'):
        if hasattr(model, 'eval'):
            model.eval()   # (BatchNorm: the running statistics)
        return torch_infer(torch, wrap(model), x)
    opt = (torch.optim.SGD(model.parameters(), lr=spec['lr'], momentum=spec.get('momentum', 0.0))
           if spec['opt'] == 'sgd' else torch.optim.Adam(model.parameters(), lr=spec['lr']))
    return torch_step(torch, wrap(model), opt, x, torch.from_numpy(arrays['y'].astype(np.int64)))


def value(out):
    return out.detach().numpy()


def sync(out):
    pass   # (torch's CPU ops have finished when they return)
