"""Pretrained files from a local folder, named as MXNet's model store names them: `<root>/<name>-<sha1[:8]>.params`.

graphc downloads nothing: a file is used only if its name's hash prefix matches its content's SHA-1, so a
truncated or swapped file is refused instead of loaded.
"""
import glob
import hashlib
import os
import re

from ...base import GraphcError, data_dir


def default_root():
    return os.path.join(data_dir(), 'models')   # ~/.mxnet/models, or $MXNET_HOME/models, as MXNet


def get_model_file(name, root=None):
    """The path of `name`'s parameter file in `root`; a clear error naming the folder and the pattern if absent."""
    root = os.path.expanduser(root or default_root())
    pattern = os.path.join(root, f'{name}-*.params')
    found = sorted(p for p in glob.glob(pattern) if re.fullmatch(re.escape(name) + r'-[0-9a-f]{8}\.params',
                                                                 os.path.basename(p)))
    if not found:
        raise GraphcError(f"pretrained {name!r}: no file {pattern} (graphc downloads no weights: put MXNet's "
                          f"'{name}-<8 hex digits of its sha1>.params' in {root}, or pass root=)")
    for path in found:
        want = os.path.basename(path)[len(name) + 1:-len('.params')]
        h = hashlib.sha1()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        if h.hexdigest().startswith(want):
            return path
    raise GraphcError(f"pretrained {name!r}: {', '.join(found)}: the content's SHA-1 does not start with the "
                      f"hash in the file name (a truncated or replaced file)")


def load_pretrained(net, name, root=None, ctx=None):
    """Load `name`'s local file into net (MXNet's get_model(..., pretrained=True)); returns net."""
    net.load_parameters(get_model_file(name, root), ctx=ctx)
    return net
