"""Model-zoo files written by real MXNet 1.9.1, for tests/test_model_zoo_mxnet.py.

Run it under a Python 3.8 venv outside the repository that has MXNet (graphc never needs it):

    cd /work && PYENV_VERSION=3.8.18 python3.8 -m venv mx38 && mx38/bin/pip install mxnet==1.9.1 numpy==1.23.5
    mx38/bin/python tools/make_mxnet_zoo_fixtures.py                      # the small set committed in tests/data/mxnet_zoo
    mx38/bin/python tools/make_mxnet_zoo_fixtures.py --all --out /tmp/mxzoo   # every get_model name (GBs: not committed)

For each model: build it (fixed seed), initialise, give every parameter and running statistic random values (so
BatchNorm's inference statistics matter), hybridize, run a random input in inference mode, then write
`<key>-symbol.json` + `<key>-0000.params` (export), `<key>.params` (save_parameters: attribute-path names),
input.npy, output.npy and manifest.json (how it was built, MXNet's version) into `<out>/<key>/`.
"""
import argparse
import json
import os
import sys

import numpy as np

# key: (constructor, positional args (strings name vision classes), keyword args, input size)
COMMITTED = {
    'mobilenet0.25': ('get_model', ['mobilenet0.25'], {'classes': 10}, 32),
    'mobilenetv2_0.25': ('get_model', ['mobilenetv2_0.25'], {'classes': 10}, 32),
    'squeezenet1.1': ('get_model', ['squeezenet1.1'], {'classes': 10}, 224),  # its AvgPool2D(13) needs 224
    # ResNets with MXNet's blocks and few channels (each stage's first block downsamples where channels change)
    'resnet_v1_basic': ('ResNetV1', ['BasicBlockV1', [2, 1, 1, 1], [8, 8, 16, 24, 32]], {'classes': 10}, 32),
    'resnet_v1_bottleneck': ('ResNetV1', ['BottleneckV1', [1, 2, 1, 1], [8, 16, 24, 32, 40]],
                             {'classes': 10, 'thumbnail': True}, 16),
    'resnet_v2_basic': ('ResNetV2', ['BasicBlockV2', [1, 1, 2, 1], [8, 8, 16, 24, 32]],
                        {'classes': 10, 'thumbnail': True}, 16),
    'resnet_v2_bottleneck': ('ResNetV2', ['BottleneckV2', [1, 1, 1, 2], [8, 16, 24, 32, 40]], {'classes': 10}, 32),
    'densenet_small': ('DenseNet', [16, 8, [2, 2, 2]], {'classes': 10}, 112),  # AvgPool2D(7) at the end
}
NO_SAVED = {'squeezenet1.1', 'mobilenet0.25'}   # committed without save_parameters files (the same tensors as the export: size)
INPUT = {'inceptionv3': 299}   # everything else at 224x224


def every_name():
    names = ['alexnet', 'inceptionv3', 'squeezenet1.0', 'squeezenet1.1'] + \
        [f'vgg{n}{bn}' for n in (11, 13, 16, 19) for bn in ('', '_bn')] + \
        [f'densenet{n}' for n in (121, 161, 169, 201)] + \
        [f'mobilenet{m}' for m in ('1.0', '0.75', '0.5', '0.25')] + \
        [f'mobilenetv2_{m}' for m in ('1.0', '0.75', '0.5', '0.25')] + \
        [f'resnet{n}_v{v}' for n in (18, 34, 50, 101, 152) for v in (1, 2)]
    return {n: ('get_model', [n], {'classes': 1000}, INPUT.get(n, 224)) for n in names}


def randomize(net, rng):
    """Values that exercise every parameter: Xavier-scaled weights, and BatchNorm statistics away from 0/1."""
    import mxnet as mx
    for name, p in sorted(net.collect_params().items()):
        shape = p.shape
        if name.endswith(('_gamma', '_running_var')):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(('_beta', '_running_mean', '_bias')):
            v = rng.normal(0, 0.1, shape)
        else:  # weights: fan-in scaled, so deep nets keep their activations in range
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            v = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        # a fresh array (set_data cannot write into the MKLDNN-reordered weights of the first forward)
        p.initialize(init=mx.init.Constant(mx.nd.array(v.astype(np.float32))), force_reinit=True)


def make(key, spec, out, seed, full):
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision
    ctor, args, kwargs, size = spec
    mx.random.seed(seed)
    rng = np.random.default_rng(seed)
    resolved = [getattr(vision, a) if isinstance(a, str) and ctor != 'get_model' else a for a in args]
    net = getattr(vision, ctor)(*resolved, **kwargs)
    net.initialize(mx.init.Xavier())
    x = rng.normal(0, 1, (2 if size < 100 else 1, 3, size, size)).astype(np.float32)
    net(mx.nd.array(x))   # deferred shapes
    randomize(net, rng)
    eager = net(mx.nd.array(x)).asnumpy()
    net.hybridize()
    y = net(mx.nd.array(x)).asnumpy()
    d = os.path.join(out, key)
    os.makedirs(d, exist_ok=True)
    net.export(os.path.join(d, key))
    saved = None if key in NO_SAVED and not full else key + '.params'
    if saved:
        net.save_parameters(os.path.join(d, saved))
    np.save(os.path.join(d, 'input.npy'), x)
    np.save(os.path.join(d, 'output.npy'), y)
    manifest = {'key': key, 'build': {'fn': ctor, 'args': args, 'kwargs': kwargs}, 'input_shape': list(x.shape),
                'output_shape': list(y.shape), 'seed': seed, 'mxnet_version': mx.__version__,
                'numpy_version': np.__version__, 'prefix': net.prefix,
                'max_abs_diff_eager_vs_hybrid': float(np.abs(eager - y).max()),
                'files': {'symbol': key + '-symbol.json', 'export_params': key + '-0000.params',
                          'saved_params': saved}}
    with open(os.path.join(d, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'tests', 'data', 'mxnet_zoo'))
    ap.add_argument('--all', action='store_true', help='every get_model name at 224x224 (299 for inceptionv3)')
    ap.add_argument('--only', nargs='*', help='these keys only')
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    specs = every_name() if a.all else COMMITTED
    for key in (a.only or specs):
        m = make(key, specs[key], a.out, a.seed, a.all)
        print(f"{key}: {m['prefix']} in {m['input_shape']} out {m['output_shape']} "
              f"eager-vs-hybrid {m['max_abs_diff_eager_vs_hybrid']:.2e}", flush=True)


if __name__ == '__main__':
    sys.exit(main())
