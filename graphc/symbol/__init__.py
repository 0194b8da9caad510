"""graphc.symbol (alias graphc.sym): symbolic graphs (MXNet's mx.sym). Every op of graphc.nd works on Symbols too.

The Symbol class lives in graphc.symbol.symbol, as in MXNet.
"""
import sys as _sys

_sys.modules['graphc.sym'] = _sys.modules[__name__]  # `import graphc.sym` and `from graphc import sym` work too

from .. import ndarray as _nd
from .symbol import Group, Symbol, Variable, var  # noqa: F401
from ..registry import OPS as _OPS

_mod = _sys.modules[__name__]
for _name in list(_OPS) + ['BatchNorm', 'add', 'subtract', 'multiply', 'divide', 'maximum', 'minimum', 'power',
                           'modulo', 'equal', 'not_equal', 'greater', 'lesser', 'greater_equal', 'lesser_equal',
                           'reshape', 'flatten', 'swapaxes', 'cast', 'identity', 'copy', 'concat', 'split']:
    setattr(_mod, _name, getattr(_nd, _name))


def load(fname):
    """A Symbol from an MXNet (or graphc) -symbol.json file."""
    from ..mxjson import load_json_file
    return load_json_file(fname)


def load_json(json_str):
    from ..mxjson import json_to_symbol
    return json_to_symbol(json_str, '<string>')
