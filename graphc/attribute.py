"""MXNet's AttrScope: attributes (ctx_group, lr_mult, ...) given to every symbol made inside the scope."""
import threading

from .context import _ClassProperty


class AttrScope:
    """`with AttrScope(group='4', data='great'):` symbols created inside get these string attributes;
    nested scopes add to (and override) the outer ones."""
    _current = threading.local()

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            if not isinstance(v, str):
                raise ValueError(f"AttrScope: attribute {k!r} must be a string, got {type(v).__name__}")  # MXNet's
        self._attr, self._old = kwargs, None

    def get(self, attr):
        """The scope's attributes merged under `attr` (the ones given explicitly win)."""
        if not self._attr:
            return attr or {}
        out = dict(self._attr)
        out.update(attr or {})
        return out

    def __enter__(self):
        self._old = AttrScope.current
        merged = dict(self._old._attr)
        merged.update(self._attr)
        self._attr = merged
        AttrScope._current.value = self
        return self

    def __exit__(self, *exc):
        AttrScope._current.value = self._old

    @_ClassProperty
    def current(cls):
        cur = getattr(cls._current, 'value', None)
        if cur is None:
            cur = cls._current.value = AttrScope()
        return cur
