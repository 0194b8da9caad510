"""AttrScope: attributes given to every symbol made in a scope, as MXNet's mx.attribute.

(Minimal version written by the sym helper; the nd helper owns this module.)
"""
import threading


class AttrScope:
    """with AttrScope(ctx_group='dev1'): every symbol made inside gets these (string) attributes."""
    _current = threading.local()

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            if not isinstance(v, str):
                raise ValueError(f"AttrScope: attribute {k!r} must be a string, got {type(v).__name__}")
        self._attr = kwargs
        self._old = None

    def get(self, attr):
        """The scope's attributes updated with `attr` (the symbol's own win)."""
        if not self._attr:
            return dict(attr) if attr else {}
        out = dict(self._attr)
        out.update(attr or {})
        return out

    def __enter__(self):
        self._old = AttrScope._current.value if hasattr(AttrScope._current, 'value') else AttrScope()
        merged = dict(self._old._attr)
        merged.update(self._attr)
        self._attr = merged
        AttrScope._current.value = self
        return self

    def __exit__(self, *exc):
        AttrScope._current.value = self._old


class _CurrentDescriptor:
    def __get__(self, obj, cls):
        if not hasattr(AttrScope._current, 'value'):
            AttrScope._current.value = AttrScope()
        return AttrScope._current.value


AttrScope.current = _CurrentDescriptor()
