"""mx.model: checkpoints in MXNet's file names and formats, and BatchEndParam (what batch callbacks get).

prefix-symbol.json holds the symbol; prefix-%04d.params the parameters under 'arg:NAME' / 'aux:NAME'."""
import collections

from .base import GraphcLoadError

BatchEndParam = collections.namedtuple('BatchEndParams', ['epoch', 'nbatch', 'eval_metric', 'locals'])


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, remove_amp_cast=True):
    """Write prefix-symbol.json (when symbol is given) and prefix-EPOCH.params (epoch as 4 digits)."""
    from . import ndarray as nd
    if symbol is not None:
        symbol.save(f'{prefix}-symbol.json', remove_amp_cast=remove_amp_cast)
    save_dict = {f'arg:{k}': v for k, v in (arg_params or {}).items()}
    save_dict.update({f'aux:{k}': v for k, v in (aux_params or {}).items()})
    nd.save(f'{prefix}-{epoch:04d}.params', save_dict)


def load_params(prefix, epoch):
    """(arg_params, aux_params) from prefix-EPOCH.params."""
    from . import ndarray as nd
    fname = f'{prefix}-{epoch:04d}.params'
    loaded = nd.load(fname)
    if not isinstance(loaded, dict):
        raise GraphcLoadError(f"{fname}: a checkpoint holds named arrays ('arg:NAME' / 'aux:NAME'), not a list")
    arg_params, aux_params = {}, {}
    for k, v in loaded.items():
        kind, sep, name = k.partition(':')
        if not sep or kind not in ('arg', 'aux'):
            raise GraphcLoadError(f"{fname}: key {k!r} is neither 'arg:NAME' nor 'aux:NAME'")
        (arg_params if kind == 'arg' else aux_params)[name] = v
    return arg_params, aux_params


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params) from prefix-symbol.json and prefix-EPOCH.params."""
    from . import symbol as sym
    symbol = sym.load(f'{prefix}-symbol.json')
    arg_params, aux_params = load_params(prefix, epoch)
    return symbol, arg_params, aux_params
