"""gluon.model_zoo.vision: ResNet V1/V2 built as MXNet Gluon builds them (names, structure, parameter counts),
eager == hybridized in training (float32: rtol 1e-4 on outputs and gradients through 18 layers of batch
statistics), save/load with MXNet's attribute-path names, export and import."""
import json

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.base import GraphcError
from graphc.gluon.model_zoo import vision


def trainable(net):
    return sum(int(np.prod(p.shape)) for p in net.collect_params().values() if p.grad_req != 'null')


def test_every_name_builds_and_bad_requests_say_why():
    for n in (18, 34, 50, 101, 152):
        for v in (1, 2):
            net = vision.get_model(f'resnet{n}_v{v}', classes=7)
            assert type(net).__name__ == f'ResNetV{v}'
    with pytest.raises(GraphcError, match=r"no model 'resnet19_v1'; available: alexnet, densenet121"):
        vision.get_model('resnet19_v1')
    with pytest.raises(GraphcError, match=r"no 19-layer ResNet; choose from \[18, 34, 50, 101, 152\]"):
        vision.get_resnet(1, 19)
    with pytest.raises(GraphcError, match=r"looked in /nonexistent for resnet18_v1-a0666292\.params"):
        vision.resnet18_v1(pretrained=True, root='/nonexistent')


def test_resnet18_v1_has_mxnets_names_structure_and_size():
    net = vision.resnet18_v1()
    net.initialize()
    assert net(nd.ones((1, 3, 64, 64))).shape == (1, 1000)
    assert trainable(net) == 11689512   # the published ResNet-18 size (ImageNet, 1000 classes)
    p = net.prefix   # resnetv1N_, N counting the ResNetV1s built in this process (as MXNet's name manager)
    names = [k[len(p):] for k in net.collect_params().keys()]
    assert p.startswith('resnetv1') and p.endswith('_')
    assert names[:3] == ['conv0_weight', 'batchnorm0_gamma', 'batchnorm0_beta']
    assert 'stage2_conv2_weight' in names and names[-2:] == ['dense0_weight', 'dense0_bias']
    paths = net._collect_params_with_prefix()
    for k in ('features.0.weight', 'features.1.gamma', 'features.4.0.body.0.weight',
              'features.5.0.downsample.0.weight', 'features.5.0.downsample.1.running_var', 'output.weight'):
        assert k in paths, k


def test_bottleneck_v1_convs_carry_biases_as_mxnets_do():
    net = vision.resnet50_v1(classes=10)
    net.initialize()
    net(nd.ones((1, 3, 32, 32)))
    paths = net._collect_params_with_prefix()
    assert 'features.4.0.body.0.bias' in paths and 'features.4.0.body.3.bias' not in paths  # 1x1 yes, 3x3 no
    assert paths['features.4.0.body.0.weight'].shape == (64, 64, 1, 1)
    assert paths['features.4.0.downsample.0.weight'].shape == (256, 64, 1, 1)


@pytest.mark.parametrize('name', ['resnet18_v1', 'resnet18_v2', 'resnet50_v2'])
def test_hybridized_training_step_equals_eager(name):
    def make():
        gc.random.seed(1)
        net = vision.get_model(name, classes=10, thumbnail=True)
        net.initialize(gc.init.Xavier())
        net(nd.ones((2, 3, 8, 8)))   # deferred shapes, before the RNG is used for anything else
        return net
    x = nd.array(np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32))
    y = nd.array([1, 3, 5, 7])
    out = {}
    for mode in ('eager', 'hybridized'):
        net = make()
        if mode == 'hybridized':
            net.hybridize()
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
        losses = []
        for _ in range(2):
            with autograd.record():
                loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y).mean()
            loss.backward()
            params = net._collect_params_with_prefix()   # attribute paths: the same in both nets
            grads = {k: p.grad().asnumpy() for k, p in params.items() if p.grad_req != 'null'}
            trainer.step(1)
            losses.append(float(loss.asscalar()))
        out[mode] = (losses, grads, {k: p.data().asnumpy() for k, p in params.items()})
    np.testing.assert_allclose(out['hybridized'][0], out['eager'][0], rtol=1e-4)
    for part in (1, 2):   # the last step's gradients, then every parameter and running statistic after it
        for k, v in out['eager'][part].items():
            np.testing.assert_allclose(out['hybridized'][part][k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_save_load_and_export_round_trips(tmp_path):
    gc.random.seed(2)
    net = vision.resnet18_v2(classes=5, thumbnail=True)
    net.initialize(gc.init.Xavier())
    x = nd.array(np.random.default_rng(3).normal(size=(2, 3, 16, 16)).astype(np.float32))
    net.hybridize()
    want = net(x).asnumpy()
    net.save_parameters(str(tmp_path / 'r.params'))
    again = vision.resnet18_v2(classes=5, thumbnail=True)
    again.load_parameters(str(tmp_path / 'r.params'))
    np.testing.assert_allclose(again(x).asnumpy(), want, rtol=1e-5, atol=1e-6)
    sym_file, params_file = net.export(str(tmp_path / 'r'))
    ops = [n['op'] for n in json.load(open(sym_file))['nodes'] if n['op'] != 'null']
    assert ops.count('Convolution') == 1 + 16 + 3 and ops.count('elemwise_add') == 8 and ops[-1] == 'FullyConnected'
    back = gluon.SymbolBlock.imports(sym_file, ['data'], params_file)
    np.testing.assert_allclose(back(x).asnumpy(), want, rtol=1e-5, atol=1e-6)
