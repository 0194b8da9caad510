"""MXNet's automatic names for symbols: NameManager (hint + counter) and Prefix (a fixed prefix)."""
import threading

from .context import _ClassProperty


class NameManager:
    """Names symbols that were given none: `<hint><n>` with a counter per hint.
    `with NameManager():` starts fresh counters inside (MXNet's behaviour)."""
    _current = threading.local()

    def __init__(self):
        self._counter, self._old = {}, None

    def get(self, name, hint):
        """`name` if given, else a new name from the hint (the op's lower-case name)."""
        if name:
            return name
        n = self._counter.get(hint, 0)
        self._counter[hint] = n + 1
        return f"{hint}{n}"

    def __enter__(self):
        self._old, NameManager._current.value = NameManager.current, self
        return self

    def __exit__(self, *exc):
        NameManager._current.value = self._old

    @_ClassProperty
    def current(cls):
        cur = getattr(cls._current, 'value', None)
        if cur is None:
            cur = cls._current.value = NameManager()
        return cur


class Prefix(NameManager):
    """Every automatic name, and every name given, gets `prefix` in front (MXNet's name.Prefix)."""

    def __init__(self, prefix):
        super().__init__()
        self._prefix = prefix

    def get(self, name, hint):
        return self._prefix + super().get(name, hint)
