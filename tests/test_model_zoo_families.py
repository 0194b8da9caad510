"""Every family of MXNet 1.9's gluon.model_zoo.vision: published parameter counts, MXNet's parameter names,
hybridized == eager (outputs and gradients of one training step, float32: rtol 1e-4), export/import round trips,
and pretrained files from a local folder. Models run at the smallest input their fixed pooling allows; where a
count depends on the input size (the Dense layer after Flatten of AlexNet and VGG), the 224x224 count is the
small model's plus the difference the flattened size makes."""
import hashlib
import os
import re
import shutil

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.base import GraphcError
from graphc.gluon.model_zoo import vision


def trainable(net):
    return sum(int(np.prod(p.shape)) for p in net.collect_params().values() if p.grad_req != 'null')


def built(name, size, **kw):
    net = vision.get_model(name, **kw)
    net.initialize()
    net(nd.zeros((1, 3, size, size)))
    return net


# name: (input size it runs at, trainable parameters at 224x224 (299x299) with 1000 classes as published (each
#        checked with real MXNet 1.9.1: its MobileNet V2 has a 1x1 expansion in the t=1 block too: 3504960),
#        (flattened size at that input, at 224) for AlexNet/VGG, some of MXNet's parameter names after the prefix)
COUNTS = {'alexnet': (64, 61100840, (256, 9216), ['conv0_weight', 'conv4_bias', 'dense2_bias']),
          'vgg11': (32, 132863336, (512, 25088), ['conv0_weight', 'conv7_bias', 'dense2_weight']),
          'vgg11_bn': (32, 132868840, (512, 25088), ['conv0_weight', 'batchnorm0_gamma', 'batchnorm7_running_var']),
          'squeezenet1.0': (224, 1248424, None, ['conv0_weight', 'conv25_bias']),
          'squeezenet1.1': (224, 1235496, None, ['conv0_weight', 'conv1_weight', 'conv25_bias']),
          'mobilenet1.0': (32, 4231976, None, ['conv0_weight', 'batchnorm26_beta', 'dense0_weight']),
          'mobilenetv2_1.0': (32, 3504960, None, ['features_conv0_weight', 'features_linearbottleneck0_conv0_weight',
                                                  'features_linearbottleneck16_batchnorm2_beta', 'output_pred_weight']),
          'densenet121': (224, 7978856, None, ['conv0_weight', 'stage1_conv0_weight', 'stage4_batchnorm31_gamma',
                                               'conv3_weight', 'dense0_bias']),
          'inceptionv3': (299, 23834568, None, ['conv0_weight', 'A1_conv0_weight', 'E2_conv8_weight', 'dense0_weight'])}


@pytest.mark.parametrize('name', sorted(COUNTS))
def test_published_parameter_counts_and_mxnet_names(name):
    size, want, flat, names = COUNTS[name]
    net = built(name, size)
    n = trainable(net)
    if flat:  # the first Dense after Flatten reads flat[1] values at 224x224 instead of flat[0]
        n += (flat[1] - flat[0]) * 4096
    assert n == want
    keys = [k[len(net.prefix):] for k in net.collect_params().keys()]
    assert not [k for k in names if k not in keys], keys


SMALL = {  # a small member of each family, at a size it runs at
    'alexnet': (lambda: vision.alexnet(classes=10), 64),
    'vgg': (lambda: vision.vgg11_bn(classes=10), 32),
    'squeezenet': (lambda: vision.squeezenet1_1(classes=10), 224),
    'mobilenet': (lambda: vision.mobilenet0_25(classes=10), 32),
    'mobilenetv2': (lambda: vision.mobilenet_v2_0_25(classes=10), 32),
    'densenet': (lambda: vision.DenseNet(16, 8, [2, 2], classes=10), 64),
}


def _step(make, size, hybridize):
    gc.random.seed(4)
    net = make()
    net.initialize(gc.init.Xavier())
    net(nd.zeros((1, 3, size, size)))
    if hybridize:
        net.hybridize()
    x = nd.array(np.random.default_rng(5).normal(size=(2, 3, size, size)).astype(np.float32))
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), nd.array([1, 7])).mean()
    loss.backward()
    params = net._collect_params_with_prefix()
    return float(loss.asscalar()), {k: p.grad().asnumpy() for k, p in params.items() if p.grad_req != 'null'}


@pytest.mark.parametrize('family', sorted(SMALL))
def test_hybridized_training_step_equals_eager(family):
    make, size = SMALL[family]
    (le, ge), (lh, gh) = _step(make, size, False), _step(make, size, True)
    np.testing.assert_allclose(lh, le, rtol=1e-4)
    for k, v in ge.items():
        np.testing.assert_allclose(gh[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_inception_hybridized_equals_eager_and_round_trips(tmp_path):
    gc.random.seed(6)
    net = vision.inception_v3(classes=10)
    net.initialize(gc.init.Xavier())
    x = nd.array(np.random.default_rng(7).normal(size=(1, 3, 299, 299)).astype(np.float32))
    want = net(x).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), want, rtol=1e-4, atol=1e-5)
    sym_file, params_file = net.export(str(tmp_path / 'inception'))
    back = gluon.SymbolBlock.imports(sym_file, ['data'], params_file)
    np.testing.assert_allclose(back(x).asnumpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('family', sorted(SMALL))
def test_export_import_round_trip(family, tmp_path):
    make, size = SMALL[family]
    gc.random.seed(8)
    net = make()
    net.initialize(gc.init.Xavier())
    net.hybridize()
    x = nd.array(np.random.default_rng(9).normal(size=(2, 3, size, size)).astype(np.float32))
    want = net(x).asnumpy()
    sym_file, params_file = net.export(str(tmp_path / family))
    back = gluon.SymbolBlock.imports(sym_file, ['data'], params_file)
    np.testing.assert_allclose(back(x).asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_pretrained_loads_mxnets_file_names_from_a_local_folder(tmp_path, monkeypatch):
    from graphc.gluon.model_zoo import model_store
    assert model_store.short_hash('resnet18_v1') == 'a0666292' and model_store.short_hash('mobilenet0.5') == '8e9d539c'
    with pytest.raises(GraphcError, match="MXNet publishes no file for it"):
        model_store.short_hash('resnet19_v1')
    net = built('mobilenetv2_0.25', 32, classes=10)
    src = str(tmp_path / 'tmp.params')
    net.save_parameters(src)
    sha = hashlib.sha1(open(src, 'rb').read()).hexdigest()
    root = re.escape(str(tmp_path))
    with pytest.raises(GraphcError, match=rf"looked in {root} for mobilenetv2_0\.25-ae8f9392\.params \(MXNet's "
                                          r"published file\) or .*found none \(graphc downloads no weights"):
        vision.get_model('mobilenetv2_0.25', classes=10, pretrained=True, root=str(tmp_path))
    published = tmp_path / 'mobilenetv2_0.25-ae8f9392.params'   # MXNet's name, another file's content
    shutil.copy(src, published)
    with pytest.raises(GraphcError, match=rf"SHA-1 is {sha}, not MXNet's published ae8f9392789b"):
        vision.get_model('mobilenetv2_0.25', classes=10, pretrained=True, root=str(tmp_path))
    os.remove(published)
    os.rename(src, tmp_path / f'mobilenetv2_0.25-{"0" * 8}.params')   # a name whose hash is not the content's
    with pytest.raises(GraphcError, match="SHA-1 does not start with the hash in the file name"):
        vision.get_model('mobilenetv2_0.25', classes=10, pretrained=True, root=str(tmp_path))
    os.rename(tmp_path / f'mobilenetv2_0.25-{"0" * 8}.params', tmp_path / f'mobilenetv2_0.25-{sha[:8]}.params')
    again = vision.get_model('mobilenetv2_0.25', classes=10, pretrained=True, root=str(tmp_path))
    x = nd.ones((1, 3, 32, 32))
    np.testing.assert_allclose(again(x).asnumpy(), net(x).asnumpy(), rtol=1e-6)
    monkeypatch.setenv('MXNET_HOME', str(tmp_path))   # MXNet's default root: $MXNET_HOME/models
    mine = tmp_path / 'models' / f'mobilenetv2_0.25-{sha[:8]}.params'
    os.makedirs(mine.parent)
    os.rename(tmp_path / mine.name, mine)
    assert vision.get_model('mobilenetv2_0.25', classes=10, pretrained=True) is not None


def test_every_mxnet_name_builds():
    names = ['alexnet', 'inceptionv3', 'squeezenet1.0', 'squeezenet1.1'] + \
        [f'vgg{n}{bn}' for n in (11, 13, 16, 19) for bn in ('', '_bn')] + \
        [f'densenet{n}' for n in (121, 161, 169, 201)] + \
        [f'mobilenet{m}' for m in ('1.0', '0.75', '0.5', '0.25')] + [f'mobilenetv2_{m}' for m in ('1.0', '0.75', '0.5', '0.25')] + \
        [f'resnet{n}_v{v}' for n in (18, 34, 50, 101, 152) for v in (1, 2)]
    for name in names:
        assert vision.get_model(name, classes=3) is not None, name
    with pytest.raises(GraphcError, match="no model 'vgg12'"):
        vision.get_model('vgg12')
