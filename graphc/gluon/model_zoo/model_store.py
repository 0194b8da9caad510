"""Pretrained files from a local folder, named as MXNet's model store names them: `<root>/<name>-<sha1[:8]>.params`.

graphc downloads nothing. MXNet's published file of a model (`resnet18_v1-a0666292.params`) is used when its
content has the published SHA-1; any other `<name>-<8 hex digits>.params` (a user's own file named the same way)
when its content's SHA-1 starts with the digits in its name. A truncated or swapped file is refused, not loaded.
"""
import glob
import hashlib
import os
import re

from ...base import GraphcError, data_dir

# The SHA-1 of each file MXNet 1.9 publishes (mxnet.gluon.model_zoo.model_store._model_sha1): its name carries the
# first 8 digits.
PUBLISHED_SHA1 = {
    'alexnet': '44335d1f0046b328243b32a26a4fbd62d9057b45',
    'densenet121': 'f27dbf2dbd5ce9a80b102d89c7483342cd33cb31',
    'densenet161': 'b6c8a95717e3e761bd88d145f4d0a214aaa515dc',
    'densenet169': '2603f878403c6aa5a71a124c4a3307143d6820e9',
    'densenet201': '1cdbc116bc3a1b65832b18cf53e1cb8e7da017eb',
    'inceptionv3': 'ed47ec45a937b656fcc94dabde85495bbef5ba1f',
    'mobilenet0.25': '9f83e440996887baf91a6aff1cccc1c903a64274',
    'mobilenet0.5': '8e9d539cc66aa5efa71c4b6af983b936ab8701c3',
    'mobilenet0.75': '529b2c7f4934e6cb851155b22c96c9ab0a7c4dc2',
    'mobilenet1.0': '6b8c5106c730e8750bcd82ceb75220a3351157cd',
    'mobilenetv2_1.0': '36da4ff1867abccd32b29592d79fc753bca5a215',
    'mobilenetv2_0.75': 'e2be7b72a79fe4a750d1dd415afedf01c3ea818d',
    'mobilenetv2_0.5': 'aabd26cd335379fcb72ae6c8fac45a70eab11785',
    'mobilenetv2_0.25': 'ae8f9392789b04822cbb1d98c27283fc5f8aa0a7',
    'resnet18_v1': 'a0666292f0a30ff61f857b0b66efc0228eb6a54b',
    'resnet34_v1': '48216ba99a8b1005d75c0f3a0c422301a0473233',
    'resnet50_v1': '0aee57f96768c0a2d5b23a6ec91eb08dfb0a45ce',
    'resnet101_v1': 'd988c13d6159779e907140a638c56f229634cb02',
    'resnet152_v1': '671c637a14387ab9e2654eafd0d493d86b1c8579',
    'resnet18_v2': 'a81db45fd7b7a2d12ab97cd88ef0a5ac48b8f657',
    'resnet34_v2': '9d6b80bbc35169de6b6edecffdd6047c56fdd322',
    'resnet50_v2': 'ecdde35339c1aadbec4f547857078e734a76fb49',
    'resnet101_v2': '18e93e4f48947e002547f50eabbcc9c83e516aa6',
    'resnet152_v2': 'f2695542de38cf7e71ed58f02893d82bb409415e',
    'squeezenet1.0': '264ba4970a0cc87a4f15c96e25246a1307caf523',
    'squeezenet1.1': '33ba0f93753c83d86e1eb397f38a667eaf2e9376',
    'vgg11': 'dd221b160977f36a53f464cb54648d227c707a05',
    'vgg11_bn': 'ee79a8098a91fbe05b7a973fed2017a6117723a8',
    'vgg13': '6bc5de58a05a5e2e7f493e2d75a580d83efde38c',
    'vgg13_bn': '7d97a06c3c7a1aecc88b6e7385c2b373a249e95e',
    'vgg16': 'e660d4569ccb679ec68f1fd3cce07a387252a90a',
    'vgg16_bn': '7f01cf050d357127a73826045c245041b0df7363',
    'vgg19': 'ad2f660d101905472b83590b59708b71ea22b2e5',
    'vgg19_bn': 'f360b758e856f1074a85abd5fd873ed1d98297c3',
}


def default_root():
    return os.path.join(data_dir(), 'models')   # ~/.mxnet/models, or $MXNET_HOME/models, as MXNet


def short_hash(name):
    """The 8 hex digits in the name of MXNet's published file of `name`."""
    if name not in PUBLISHED_SHA1:
        raise GraphcError(f"pretrained {name!r}: MXNet publishes no file for it; published: {', '.join(PUBLISHED_SHA1)}")
    return PUBLISHED_SHA1[name][:8]


def _sha1(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def get_model_file(name, root=None):
    """The path of `name`'s parameter file in `root` (MXNet's $MXNET_HOME/models by default); an error that
    names the folder and the file looked for when there is none, or when its content is not what its name says."""
    root = os.path.expanduser(root or default_root())
    published = PUBLISHED_SHA1.get(name)
    if published:
        path = os.path.join(root, f'{name}-{published[:8]}.params')
        if os.path.exists(path):
            got = _sha1(path)
            if got != published:
                raise GraphcError(f"pretrained {name!r}: {path}: the content's SHA-1 is {got}, not MXNet's "
                                  f"published {published} (a truncated or replaced file)")
            return path
    own = sorted(p for p in glob.glob(os.path.join(glob.escape(root), glob.escape(name) + '-*.params'))
                 if re.fullmatch(re.escape(name) + r'-[0-9a-f]{8}\.params', os.path.basename(p)))
    if not own:
        wanted = f"{name}-{published[:8]}.params (MXNet's published file) or " if published else ''
        raise GraphcError(f"pretrained {name!r}: looked in {root} for {wanted}{name}-<first 8 hex digits of the "
                          f"file's SHA-1>.params and found none (graphc downloads no weights: put the file there, "
                          f"or pass root=)")
    for path in own:
        if _sha1(path).startswith(os.path.basename(path)[len(name) + 1:-len('.params')]):
            return path
    raise GraphcError(f"pretrained {name!r}: {', '.join(own)}: the content's SHA-1 does not start with the "
                      f"hash in the file name (a truncated or replaced file)")


def load_pretrained(net, name, root=None, ctx=None):
    """Load `name`'s local file into net (MXNet's get_model(..., pretrained=True)); returns net."""
    net.load_parameters(get_model_file(name, root), ctx=ctx)
    return net
