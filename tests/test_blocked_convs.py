"""passes/blocked_convs.py and runtime/onednn.conv_region: convolutions that read each other as one op whose
activations stay in oneDNN's blocked layout (ReLU and residual adds as post-ops, a sum in place). The op equals its
spec in float64 (the parts one by one, graphc/ops' NumPy references); the pass forms it only where it is exact to
(one value read outside, no residual read after the sum overwrote it) and a hybridized model equals the eager one."""
import numpy as np
import pytest

import graphc as gc
from graphc import nd
from graphc.gluon import HybridBlock, nn
from graphc.passes.blocked_convs import CONV_REGION, in_place
from graphc.registry import get
from graphc.runtime import onednn

needs_wheel = pytest.mark.skipif(onednn.library() is None,
                                 reason="the oneDNN wheel is not installed (pip install 'graphc[onednn]')")


def stage(cin, cout, src, k=3, st=1, pd=1, dl=1, g=1, bias=True, add=None, relu=True, act=None):
    conv = get('Convolution').canon(dict(kernel=(k, k), stride=(st, st), pad=(pd, pd), dilate=(dl, dl), num_filter=cout,
                                         num_group=g, no_bias=not bias, layout='NCHW'))
    return {'conv': conv, 'src': src, 'add': add, 'act': act or ('relu' if relu else None)}, (cout, cin // g, k, k)


# (data shape, stages): each stage (its attrs, its weight shape)
REGIONS = {
    'basic block': ((2, 16, 10, 10), [stage(16, 16, 0), stage(16, 16, 1, add=0)]),   # the data read twice, summed
    'downsample': ((2, 16, 10, 10), [stage(16, 32, 0, k=1, st=2, pd=0, relu=False), stage(16, 32, 0, st=2),
                                     stage(32, 32, 2, add=1)]),
    'stem, then a block': ((3, 3, 9, 9), [stage(3, 16, 0, bias=False, relu=False), stage(16, 16, 1, bias=False),
                                          stage(16, 16, 2, add=1)]),
    'sum without relu, groups, dilation': ((2, 8, 12, 12), [stage(8, 16, 0, relu=False), stage(16, 16, 1, g=4),
                                                            stage(16, 16, 2, pd=2, dl=2, add=1, relu=False),
                                                            stage(16, 8, 3, k=1, pd=0)]),
    'stem, then a depthwise': ((2, 3, 32, 32), [stage(3, 32, 0, st=2), stage(32, 32, 1, g=32)]),   # (MobileNet's)
    'inverted residual, clips': ((2, 8, 10, 10), [stage(8, 32, 0, k=1, pd=0, act=(0.0, 0.5)),     # (MobileNet V2's,
                                                  stage(32, 32, 1, g=32, act=(-0.25, 1.0)),       # its ReLU6 a clip)
                                                  stage(32, 8, 2, k=1, pd=0, add=0, relu=False)]),
}


def inputs(xs, region, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(xs, dtype=np.float32)]
    for a, ws in region:
        arrays.append(rng.standard_normal(ws, dtype=np.float32) / float(np.sqrt(np.prod(ws[1:]))))
        if not a['conv']['no_bias']:
            arrays.append(rng.standard_normal(ws[0], dtype=np.float32))
    return {'stages': tuple(a for a, _ in region)}, arrays


def close(a, ref):
    assert a.shape == ref.shape and a.dtype == np.float32
    np.testing.assert_allclose(a, ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max()))


@needs_wheel
@pytest.mark.parametrize('name', list(REGIONS))
def test_a_region_equals_its_parts_in_float64(name):
    """oneDNN's one chain over blocked values, and the op's spec in float32, equal the spec in float64 (NumPy's
    convolution, add and ReLU one by one); shape inference agrees."""
    xs, region = REGIONS[name]
    attrs, arrays = inputs(xs, region)
    ref = CONV_REGION.ref(attrs, *[a.astype(np.float64) for a in arrays])
    y = onednn.conv_region(attrs, *arrays)
    assert y is not None, "oneDNN refused the region"
    close(y, ref)
    close(CONV_REGION.ref(attrs, *arrays), ref)
    assert CONV_REGION.infer(attrs, [a.shape for a in arrays], [a.dtype for a in arrays])[0] == [ref.shape]
    assert onednn.conv_region(attrs, *arrays).tobytes() == y.tobytes()   # (a second call: the arena reused)


@needs_wheel
@pytest.mark.parametrize('name', list(REGIONS))
def test_no_stage_runs_onednns_reference_kernel(monkeypatch, name):
    """Where oneDNN has only its reference kernel for a convolution over its input's blocked layout (MobileNet's first
    depthwise after its stem: 200 ms of a 255 ms call at batch 2 of 224x224), the input is reordered into the layout
    oneDNN picks for that convolution instead."""
    monkeypatch.setattr(onednn, '_plans', {})
    xs, region = REGIONS[name]
    attrs, arrays = inputs(xs, region)
    assert onednn.conv_region(attrs, *arrays) is not None
    step, = [s for k, s in onednn._plans.items() if k[0] == 'region']
    impls = [onednn._impl(pd) for pd in step.pds]
    assert not [i for i in impls if i.startswith('ref')], impls


@needs_wheel
def test_the_arena_reuses_the_slots_of_dead_values():
    """A chain of six convolutions holds two activations at a time, not six: a value's slot is reused once no later
    primitive reads it (the input's reorder buffer too, after its convolution); the six reordered weights are
    buffers of the step's own, kept between calls."""
    region = [stage(16, 16, i) for i in range(6)]
    attrs, arrays = inputs((2, 16, 12, 12), region, seed=1)
    y = onednn.conv_region(attrs, *arrays)
    close(y, CONV_REGION.ref(attrs, *[a.astype(np.float64) for a in arrays]))
    step = next(s for k, s in onednn._plans.items() if k[0] == 'region' and k[1] == (2, 16, 12, 12) and len(k) == 2 + 6 + 1)
    assert len(step.scratch) == 7 and len(step.slots) <= 3 and len(step.kept_bufs) == 2 * 6, step.slots


@needs_wheel
def test_reordered_weights_are_made_again_when_a_weight_changes(monkeypatch):
    """The weights' reordered copies are reused while the same arrays come in and no in-place write happened
    (WRITES): a new weight array, or an in-place write through the API, makes them again."""
    from graphc.ndarray import ndarray
    monkeypatch.setattr(onednn, '_plans', {})
    xs, region = REGIONS['basic block']
    attrs, arrays = inputs(xs, region)
    spec = lambda arrs: CONV_REGION.ref(attrs, *[a.astype(np.float64) for a in arrs])  # noqa: E731
    close(onednn.conv_region(attrs, *arrays), spec(arrays))
    step, = [s for k, s in onednn._plans.items() if k[0] == 'region']
    lib, executed = onednn._state['lib'], []
    kept, execute = {prim.value for prim, _ in step.kept_ops}, lib.dnnl_primitive_execute
    monkeypatch.setattr(lib, 'dnnl_primitive_execute', lambda prim, *a: executed.append(prim.value) or execute(prim, *a))

    def reordered(*arrs):   # (whether the call reordered the weights again)
        executed.clear()
        close(onednn.conv_region(attrs, *arrs), spec(arrs))
        return bool(kept & set(executed))
    assert len(kept) == 2 and not reordered(*arrays)               # the same arrays: kept
    arrays[1] = arrays[1] * -1
    assert reordered(*arrays)                                        # a new array: made again
    arrays[3] *= 0.5
    ndarray.WRITES[0] += 1
    assert reordered(*arrays) and not reordered(*arrays)           # in place, then the API's WRITES bump
    net, x = _net(5)   # through a hybridized model: the stem's weight (no BatchNorm) written in place
    net.hybridize()
    net(x)
    w = net.stem.weight.data()
    w[:] = w * 2
    want = net(x).asnumpy()
    net.hybridize(False)
    close(want, net(x).asnumpy().astype(np.float64))


def test_a_residual_is_never_read_after_the_sum_overwrote_it():
    """in_place: a stage that reads a summed residual later, or sums into its own input, is refused (the op's
    runtime declines it too: the parts run)."""
    a, _ = stage(16, 16, 0)
    ok = [a, dict(a, src=1, add=0)]
    assert in_place(ok)
    assert not in_place(ok + [dict(a, src=0)])             # the data read after stage 1 summed into it
    assert not in_place(ok + [dict(a, src=2, add=0)])      # summed into twice
    assert not in_place([a, dict(a, src=1, add=1)])        # into the value it convolves
    xs, region = REGIONS['basic block']
    attrs, arrays = inputs(xs, region + [stage(16, 16, 0)])
    assert onednn.conv_region(attrs, *arrays) is None
    close(CONV_REGION.ref(attrs, *arrays), CONV_REGION.ref(attrs, *[a.astype(np.float64) for a in arrays]))


@needs_wheel
def test_what_onednn_cannot_run_is_left_to_the_parts(monkeypatch):
    xs, region = REGIONS['basic block']
    attrs, arrays = inputs(xs, region)
    assert onednn.conv_region(attrs, *[a.astype(np.float64) for a in arrays]) is None
    monkeypatch.setenv('GRAPHC_ONEDNN', '0')
    assert onednn.conv_region(attrs, *arrays) is None


class Block(HybridBlock):
    """A ResNet V1 basic block: conv-BN-ReLU, conv-BN, + the shortcut (a strided 1x1 conv-BN where it changes
    shape), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.HybridSequential()
        self.body.add(nn.Conv2D(cout, 3, stride, 1, use_bias=False, in_channels=cin), nn.BatchNorm(),
                      nn.Activation('relu'), nn.Conv2D(cout, 3, 1, 1, use_bias=False, in_channels=cout), nn.BatchNorm())
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.HybridSequential()
            self.down.add(nn.Conv2D(cout, 1, stride, use_bias=False, in_channels=cin), nn.BatchNorm())

    def hybrid_forward(self, F, x):
        return F.Activation(self.body(x) + (self.down(x) if self.down else x), act_type='relu')


class Net(HybridBlock):
    def __init__(self, also_intermediate=False):
        super().__init__()
        self.also = also_intermediate
        self.stem = nn.Conv2D(8, 3, padding=1, in_channels=3)
        self.blocks = nn.HybridSequential()
        self.blocks.add(Block(8, 8, 1), Block(8, 16, 2))
        self.head = nn.HybridSequential()
        self.head.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(5))

    def hybrid_forward(self, F, x):
        h = self.stem(x)
        y = self.blocks(h)
        return (self.head(y), h) if self.also else self.head(y)


def _net(seed=0, also=False):
    gc.random.seed(seed)
    net = Net(also)
    net.initialize()
    x = nd.array(np.random.default_rng(seed).standard_normal((3, 3, 12, 12), dtype=np.float32))
    net(x)
    rng = np.random.default_rng(seed + 1)
    for p in net.collect_params().values():   # (batch statistics and scales that are not the identity)
        if p.name.endswith(('running_var', 'gamma')):
            p.set_data(nd.array(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        elif p.name.endswith(('running_mean', 'beta')):
            p.set_data(nd.array(rng.uniform(-0.5, 0.5, p.shape).astype(np.float32)))
    return net, x


@needs_wheel
@pytest.mark.parametrize('declined', [False, True], ids=['onednn', 'declined'])
def test_a_hybridized_resnet_runs_its_body_as_one_region(monkeypatch, declined):
    """Inference: the stem and both blocks (BatchNorms folded) are one op of 6 convolutions, and the compiled model
    equals the eager one, in oneDNN's one chain and where oneDNN declines it (its parts then run one by one);
    GRAPHC_DISABLE_PASSES=blocked_convs keeps the ops, and a training step has no region."""
    if declined:
        monkeypatch.setattr(onednn, 'conv_region', lambda attrs, *arrays: None)
    net, x = _net()
    want = net(x).asnumpy()
    net.hybridize()
    close(net(x).asnumpy(), want.astype(np.float64))
    text = gc.explain(net, x)
    assert 'regions=1, convs=6' in text and text.count('_conv_region  ->') == 1
    assert '_conv_region' not in gc.explain(net, x, training=True)
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', 'blocked_convs')
    assert '_conv_region' not in gc.explain(net, x)


def test_without_the_wheel_the_fused_kernels_run_the_convolutions(monkeypatch):
    """No oneDNN (or GRAPHC_ONEDNN=0): no region (its parts alone are slower than the fused conv epilogues), and the
    model equals the eager one."""
    monkeypatch.setattr(onednn, '_state', {})
    monkeypatch.setattr(onednn, '_find', lambda: iter(()))
    net, x = _net(1)
    want = net(x).asnumpy()
    net.hybridize()
    close(net(x).asnumpy(), want.astype(np.float64))
    assert '_conv_region' not in gc.explain(net, x)


@needs_wheel
def test_a_region_with_a_value_read_outside_is_kept_as_its_ops():
    """The stem's output is also a model output: it would have to leave the blocked layout in the middle, so the
    region is not formed (its ops run as before) and the model still equals the eager one."""
    net, x = _net(2, also=True)
    want = [o.asnumpy() for o in net(x)]
    net.hybridize()
    for o, w in zip(net(x), want):
        close(o.asnumpy(), w.astype(np.float64))
    assert 'regions=0' in gc.explain(net, x)


@needs_wheel
def test_mobilenet_v2_runs_as_one_region_with_its_relu6_clips():
    """MobileNet V2 (inverted residuals: ReLU6 is a clip, the residual add has no activation) is one region, and the
    compiled model equals the eager one."""
    from graphc.gluon.model_zoo import vision
    gc.random.seed(3)
    net = vision.get_model('mobilenetv2_0.25', classes=10)
    net.initialize(gc.init.Xavier())
    x = nd.array(np.random.default_rng(3).standard_normal((2, 3, 32, 32), dtype=np.float32))
    net(x)
    rng = np.random.default_rng(4)
    for p in net.collect_params().values():   # (statistics that leave activations of order 1, some above 6)
        if p.name.endswith(('running_var', 'gamma')):
            p.set_data(nd.array(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        elif p.name.endswith(('running_mean', 'beta')):
            p.set_data(nd.array(rng.uniform(-0.5, 0.5, p.shape).astype(np.float32)))
    want = net(x).asnumpy()
    net.hybridize()
    close(net(x).asnumpy(), want.astype(np.float64))
    assert 'regions=1,' in gc.explain(net, x)


class RandomNet(HybridBlock):
    """Random convolutions over earlier values: each reads one of the values so far, and where the shapes allow
    adds another (a shortcut), then maybe a ReLU or a clip; the last value is the output."""

    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.plan, shapes, self.convs = [], [(4, 8, 8)], nn.HybridSequential()
        for i in range(int(rng.integers(3, 7))):
            src = int(rng.integers(0, len(shapes)))
            c, h, w = shapes[src]
            k, st = int(rng.choice([1, 3])), int(rng.choice([1, 1, 2])) if h > 2 else 1
            g = int(rng.choice([1, c])) if rng.random() < 0.3 else 1
            f = c if g > 1 else int(rng.choice([4, 8, 12]))
            self.convs.add(nn.Conv2D(f, k, st, k // 2, groups=g, in_channels=c, use_bias=bool(rng.random() < 0.7)))
            out = (f, (h + 2 * (k // 2) - k) // st + 1, (w + 2 * (k // 2) - k) // st + 1)
            same = [j for j, s in enumerate(shapes) if s == out and j != src]
            add = int(rng.choice(same)) if same and rng.random() < 0.6 else None
            act = rng.choice(['relu', 'clip', None])
            self.plan.append((src, add, act))
            shapes.append(out)

    def hybrid_forward(self, F, x):
        values = [x]
        for conv, (src, add, act) in zip(self.convs, self.plan):
            y = conv(values[src])
            if add is not None:
                y = y + values[add]
            if act == 'relu':
                y = F.relu(y)
            elif act == 'clip':
                y = F.clip(y, -0.5, 0.5)
            values.append(y)
        return values[-1]


def _random_net(seed):
    """The hybridized RandomNet(seed) checked equal to its eager self; whether the pass formed a region in it."""
    gc.random.seed(seed)
    net = RandomNet(seed)
    net.initialize(gc.init.Xavier())
    x = nd.array(np.random.default_rng(seed).standard_normal((2, 4, 8, 8), dtype=np.float32))
    want = net(x).asnumpy()
    net.hybridize()
    close(net(x).asnumpy(), want.astype(np.float64))
    return 'regions=0' not in gc.explain(net, x)


@needs_wheel
@pytest.mark.parametrize('seed', range(12))
def test_random_residual_nets_equal_eager(seed):
    """Random DAGs of convolutions, shortcut adds, ReLUs and clips: the hybridized model (regions where the pass's
    rules allow them, the ops where not) equals the eager one."""
    _random_net(seed)


@needs_wheel
def test_most_random_nets_run_a_region():
    """(So the equality above covers regions and not only the ops they leave alone.)"""
    assert sum(_random_net(seed) for seed in range(12)) >= 8
