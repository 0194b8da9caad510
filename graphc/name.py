"""NameManager and Prefix: how symbols get their names, as MXNet's mx.name.

(Minimal version written by the sym helper; the nd helper owns this module.)
"""
import threading


class NameManager:
    """Gives a symbol without a name the op's hint and a per-hint counter: fullyconnected0, ..."""
    _current = threading.local()

    def __init__(self):
        self._counter = {}
        self._old = None

    def get(self, name, hint):
        if name:
            return name
        n = self._counter.get(hint, 0)
        self._counter[hint] = n + 1
        return f"{hint}{n}"

    def __enter__(self):
        self._old = NameManager.current
        NameManager._current.value = self
        return self

    def __exit__(self, *exc):
        NameManager._current.value = self._old


class Prefix(NameManager):
    """Names every symbol made in its scope with a prefix: Prefix('mlp_') gives mlp_fc0 ..."""

    def __init__(self, prefix):
        super().__init__()
        self._prefix = prefix

    def get(self, name, hint):
        return self._prefix + super().get(name, hint)


def _current(cls):
    if not hasattr(cls._current, 'value'):
        cls._current.value = NameManager()
    return cls._current.value


class _CurrentDescriptor:
    def __get__(self, obj, cls):
        return _current(NameManager)


NameManager.current = _CurrentDescriptor()
