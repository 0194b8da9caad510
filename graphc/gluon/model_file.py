"""Block.save / Block.load (MXNet 1.9): PREFIX-model.json records the block tree (each block's type, name,
whether it was hybridized, its children's keys in order) and PREFIX-model.params its parameters by attribute
path. load() checks that the tree it is called on is built the same way, renames the children to the saved keys
(so the parameter paths match even when the blocks were named differently), hybridizes what was hybridized
(the graph is traced again on the next call) and loads the parameters. The JSON is data only: a size cap, plain
types checked, nothing in it is run."""
import json
import os
from collections import OrderedDict

from ..base import GraphcLoadError

MAX_MODEL_JSON = 16 << 20


def _tree(blk):
    from .block import HybridBlock
    return {'type': type(blk).__name__.lower(), 'name': blk.name,
            'hybridized': bool(isinstance(blk, HybridBlock) and getattr(blk, '_active', False)),
            'children': [[k, _tree(c)] for k, c in blk._children.items()]}


def save_model(block, prefix):
    with open(prefix + '-model.json', 'w') as f:
        json.dump(_tree(block), f)
    block.save_parameters(prefix + '-model.params')


def _restore(blk, mdl, path, fname, apply):
    """Check the tree against the saved record (apply=False), or rename and hybridize as saved (apply=True)."""
    from .block import HybridBlock
    if not isinstance(mdl, dict) or not isinstance(mdl.get('children'), list):
        raise GraphcLoadError(f"{fname}: {path}: not a block record")
    kind = type(blk).__name__.lower()
    if mdl.get('type') != kind:
        raise GraphcLoadError(f"{fname}: {path} is a {kind}, the saved model has a {mdl.get('type')!r} there; "
                              "build the model the same way as the one saved")
    kids = list(blk._children.items())
    if len(kids) != len(mdl['children']):
        raise GraphcLoadError(f"{fname}: {path} ({kind}) has {len(kids)} children, the saved one "
                              f"{len(mdl['children'])}")
    renamed = OrderedDict()
    for (key, child), entry in zip(kids, mdl['children']):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise GraphcLoadError(f"{fname}: {path}: a child entry is not [key, block]")
        _restore(child, entry[1], f"{path}.{entry[0]}", fname, apply)
        renamed[entry[0]] = child
    if not apply:
        return
    blk._children.clear()
    blk._children.update(renamed)
    if mdl.get('hybridized') is True and isinstance(blk, HybridBlock) and not blk._active:
        blk.hybridize()


def load_model(block, prefix):
    fname = prefix + '-model.json'
    if not os.path.isfile(fname):
        raise GraphcLoadError(f"Block.load: no model file {fname}")
    if os.path.getsize(fname) > MAX_MODEL_JSON:
        raise GraphcLoadError(f"Block.load: {fname} is {os.path.getsize(fname)} bytes, more than a model tree")
    try:
        with open(fname) as f:
            model = json.load(f)
    except (ValueError, RecursionError) as e:
        raise GraphcLoadError(f"Block.load: {fname} is not valid JSON ({type(e).__name__})") from None
    for apply in (False, True):  # nothing changes unless the whole tree matches
        _restore(block, model, type(block).__name__.lower(), fname, apply)
    block.load_parameters(prefix + '-model.params')
