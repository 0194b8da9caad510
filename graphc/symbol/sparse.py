"""mx.sym.sparse: MXNet's sparse namespace of Symbol ops. A bound graph computes on the dense form of its
sparse arguments (MXNet's storage fallback); variables keep their storage type (`stype=`) as the
`__storage_type__` attribute, and simple_bind allocates those arguments in it."""


def __getattr__(name):
    """Every op of mx.sym (dot, retain-free arithmetic, elemwise_add, ...) under its MXNet name."""
    from .. import symbol as sym
    if name.startswith('__') or not hasattr(sym, name):
        raise AttributeError(f"module 'graphc.symbol.sparse' has no attribute {name!r}")
    return getattr(sym, name)
