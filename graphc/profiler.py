"""MXNet 1.9's profiler (`mx.profiler`): the time of every eager op and of every step of a hybridized plan (its
fused kernels, its native BLAS/oneDNN/kernel steps, its Python steps), written as a Chrome trace (chrome://tracing,
Perfetto) by dump() and summed per op name by dumps().

    profiler.set_config(profile_all=True, aggregate_stats=True, filename='profile.json')
    profiler.set_state('run'); ...; profiler.set_state('stop')
    print(profiler.dumps()); profiler.dump()

Off, it costs nothing but a list's truth test per eager op, per plan segment and per Python step: the hooks
(graphc/ndarray/ndarray.invoke, runtime/plan.py) read `imperative` and `symbolic`, which hold one item only while
recording. Eager ops are category 'operator'; plan steps 'native step' (inside a native segment, run step by step
while recording) or 'python step'. profile_memory and profile_api are accepted and record nothing yet; the
aggregate stats are kept whatever aggregate_stats says. With continuous_dump each dump() rewrites the file with
every event dumped to it so far (MXNet appends to it); without, with the events since the last dump. A Custom
op's own time is category 'Custom Operator' as '<op_type>::pure_python' ('_backward_<op_type>::...' backward),
the ops its Python code runs as '<op_type>::<op name>', as MXNet names them."""
import contextlib
import json
import os
import threading
import time

from .base import GraphcError

imperative = []   # [True] while eager ops are recorded (graphc/ndarray/ndarray.py reads it)
symbolic = []     # [True] while plan steps are recorded (runtime/plan.py reads it)

FLAGS = ('profile_all', 'profile_symbolic', 'profile_imperative', 'profile_memory', 'profile_api')
_config = {'filename': 'profile.json', 'profile_symbolic': True, 'profile_imperative': True,
           'profile_memory': False, 'profile_api': False, 'aggregate_stats': False, 'continuous_dump': False,
           'dump_period': 1.0, 'profile_process': 'worker'}
_state = {'run': False, 'paused': False, 'scope': '<unk>:'}
_events = []   # (category, name, start ns, end ns, thread id, args or None) since the last dump()
_stats = {}    # {category: {name: [count, total ns, min ns, max ns]}} since the last dumps(reset=True)
_folded = [0]  # how many of _events _stats holds
_written = []  # continuous_dump: the events dumped to the file so far
_custom = []   # the op_types of the Custom ops running now (their inner ops are attributed to them)
_lock = threading.Lock()
_T0 = time.perf_counter_ns()


def set_config(**kwargs):
    """MXNet's set_config: filename, profile_all, profile_symbolic, profile_imperative, profile_memory,
    profile_api, aggregate_stats, continuous_dump, dump_period, profile_process. A call that names none of the
    profile_* flags keeps the ones set before (MXNet would record nothing)."""
    bad = [k for k in kwargs if k not in _config and k != 'profile_all']
    if bad:
        raise GraphcError(f"profiler.set_config: unknown setting(s) {bad}; "
                          f"choose from {sorted(_config) + ['profile_all']}")
    _check_process(kwargs.get('profile_process', 'worker'))
    if any(k in kwargs for k in FLAGS):
        for k in FLAGS[1:]:
            _config[k] = bool(kwargs.get('profile_all') or kwargs.get(k, False))
    if 'filename' in kwargs and kwargs['filename'] != _config['filename']:
        _written.clear()  # a new file starts empty
    _config.update((k, v) for k, v in kwargs.items() if k not in FLAGS)
    _apply()


def _check_process(p):
    if p != 'worker':
        raise GraphcError(f"profiler: profile_process={p!r}: graphc has no kvstore server processes ('worker' only)")


def _apply():
    on = _state['run'] and not _state['paused']
    imperative[:] = [True] if on and _config['profile_imperative'] else []
    symbolic[:] = [True] if on and _config['profile_symbolic'] else []


def set_state(state='stop', profile_process='worker'):
    """'run' starts recording, 'stop' stops it (what was recorded stays until dump/dumps(reset=True))."""
    _check_process(profile_process)
    if state not in ('run', 'stop'):
        raise GraphcError(f"profiler.set_state: state must be 'run' or 'stop', got {state!r}")
    _state['run'], _state['paused'] = state == 'run', False
    _apply()


def get_state():
    return 'run' if _state['run'] else 'stop'


def pause(profile_process='worker'):
    """Stop recording for a while without leaving the 'run' state (resume() goes on)."""
    _check_process(profile_process)
    _state['paused'] = True
    _apply()


def resume(profile_process='worker'):
    _check_process(profile_process)
    _state['paused'] = False
    _apply()


def _recording():
    return _state['run'] and not _state['paused']


# ------------------------------------------------------------------------------------------- recording
def record(cat, name, t0, t1, args=None):
    """One timed event (perf_counter_ns times), in the current scope."""
    if _state['scope'] != '<unk>:':
        args = dict(args or {}, scope=_state['scope'])
    _events.append((cat, name, t0, t1, threading.get_ident(), args))


def call_op(op, kernel, attrs, data):
    """An eager op's kernel call, timed (graphc/ndarray/ndarray.invoke, while recording)."""
    custom = attrs.get('op_type') if op.name in ('Custom', '_backward_Custom') else None
    if custom is not None:
        _custom.append(custom)
    t0 = time.perf_counter_ns()
    try:
        out = kernel(attrs, *data)
    finally:
        if custom is not None:
            _custom.pop()
    t1 = time.perf_counter_ns()
    if custom is not None:
        back = '_backward_' if op.name.startswith('_backward') else ''
        record('Custom Operator', f'{back}{custom}::pure_python', t0, t1)
    elif _custom:
        record('Custom Operator', f'{_custom[-1]}::{op.name}', t0, t1)
    else:
        record('operator', op.name, t0, t1)
    return out


def step_name(node):
    """A plan step's name in the trace and the table: its op's, a fused group's as Fused(op>op>...)."""
    ops = getattr(node.op, 'ops', None)
    return f"Fused({'>'.join(ops())})" if ops is not None else node.op.name


def timed_steps(steps):
    """A plan's Python steps (runtime/plan.Plan.steps items) whose kernels record their time."""
    return [(_timed(ref, step_name(node), {'node': node.name}), attrs, ins, outs, free, node)
            for ref, attrs, ins, outs, free, node in steps]


def _timed(ref, name, args):
    def run(attrs, *arrays):
        t0 = time.perf_counter_ns()
        r = ref(attrs, *arrays)
        record('python step', name, t0, time.perf_counter_ns(), args)
        return r
    return run


def run_segment(run_native, seg, ptrs, row_bytes=16 * 8):
    """A native segment run one step at a time, each timed (runtime/plan.NativeProgram.run, while recording).
    seg.seg.nodes: (node, its number of rows) in row order."""
    addr = seg.addr
    for node, n in seg.seg.nodes:
        t0 = time.perf_counter_ns()
        run_native(addr, n, ptrs)
        record('native step', step_name(node), t0, time.perf_counter_ns(), {'node': node.name})
        addr += n * row_bytes


@contextlib.contextmanager
def scope(name='<unk>:', append_mode=False):
    """Events recorded inside carry args.scope = name (append_mode: the enclosing scope's name + name)."""
    old = _state['scope']
    _state['scope'] = (old if append_mode and old != '<unk>:' else '') + name
    try:
        yield
    finally:
        _state['scope'] = old


# ------------------------------------------------------------------------------------------- output
def _fold():
    """Sum the events not yet in _stats into it."""
    with _lock:
        n = len(_events)
        for cat, name, t0, t1, _, _ in _events[_folded[0]:n]:
            if cat in ('counter', 'marker'):
                continue
            s = _stats.setdefault(cat, {}).get(name)
            d = t1 - t0
            if s is None:
                _stats[cat][name] = [1, d, d, d]
            else:
                s[0] += 1
                s[1] += d
                s[2] = min(s[2], d)
                s[3] = max(s[3], d)
        _folded[0] = n
        return n


def trace(events):
    """The Chrome trace document of events: complete ('X') events in microseconds, counters ('C') and
    instant markers ('i'), one thread id per Python thread."""
    pid, tids, out = os.getpid(), {}, []
    for cat, name, t0, t1, tid, args in events:
        e = {'name': name, 'cat': cat, 'ph': 'X', 'ts': (t0 - _T0) / 1e3, 'pid': pid,
             'tid': tids.setdefault(tid, len(tids))}
        if cat == 'counter':
            e.update(ph='C', args={name: args['value']}, cat=args['domain'])
        elif cat == 'marker':
            e.update(ph='i', s=args['s'], cat=args['domain'])
        else:
            e['dur'] = (t1 - t0) / 1e3
            if args:
                e['args'] = args
        out.append(e)
    meta = [{'name': 'process_name', 'ph': 'M', 'pid': pid, 'args': {'name': 'graphc'}}]
    meta += [{'name': 'thread_name', 'ph': 'M', 'pid': pid, 'tid': i, 'args': {'name': f'thread {i}'}}
             for i in tids.values()]
    return {'traceEvents': meta + out, 'displayTimeUnit': 'ms', 'otherData': {'producer': 'graphc.profiler'}}


def dump(finished=True, profile_process='worker'):
    """Write the events since the last dump to the configured filename as a Chrome trace (and drop them from
    memory; the aggregate stats keep them). finished: MXNet's flag (no further dumps); accepted."""
    _check_process(profile_process)
    n = _fold()
    with _lock:
        if _config['continuous_dump']:
            _written.extend(_events[:n])
            doc = trace(_written)
        else:
            _written.clear()
            doc = trace(_events[:n])
        del _events[:n]
        _folded[0] -= n
    with open(_config['filename'], 'w') as f:
        json.dump(doc, f)


SORT = {'total': 1, 'avg': None, 'min': 2, 'max': 3, 'count': 0}


def dumps(reset=False, format='table', sort_by='total', ascending=False):
    """The aggregate stats (per category, per name: count, total, min, max, avg ms) as MXNet's table or its
    JSON ({'Time': {category: {name: {'Count', 'Total', 'Min', 'Max', 'Avg'}}}, 'Memory': {}, 'Unit': ...});
    reset: clear them afterwards."""
    if format not in ('table', 'json'):
        raise GraphcError(f"profiler.dumps: format must be 'table' or 'json', got {format!r}")
    if sort_by not in SORT:
        raise GraphcError(f"profiler.dumps: sort_by must be one of {list(SORT)}, got {sort_by!r}")
    _fold()
    with _lock:
        stats = {c: {k: list(v) for k, v in names.items()} for c, names in _stats.items()}
        if reset:
            _stats.clear()
    i = SORT[sort_by]

    def key(item):
        s = item[1]
        return s[1] / s[0] if i is None else s[i]
    time_ = {c: {k: {'Count': s[0], 'Total': s[1] / 1e6, 'Min': s[2] / 1e6, 'Max': s[3] / 1e6,
                     'Avg': s[1] / s[0] / 1e6} for k, s in sorted(names.items(), key=key, reverse=not ascending)}
             for c, names in sorted(stats.items())}
    if format == 'json':
        return json.dumps({'Time': time_, 'Memory': {}, 'Unit': {'Time': 'ms', 'Memory': 'kB'}})
    lines = ['', 'Profile Statistics:', '\tNote the difference in units for different entries.']
    for cat, names in time_.items():
        w = max([len(k) for k in names] + [30])
        lines += [cat, '=' * 17, f"{'Name':<{w}}{'Total Count':>14}{'Time (ms)':>14}{'Min Time (ms)':>17}"
                  f"{'Max Time (ms)':>17}{'Avg Time (ms)':>17}",
                  f"{'----':<{w}}{'-----------':>14}{'---------':>14}{'-------------':>17}{'-------------':>17}"
                  f"{'-------------':>17}"]
        lines += [f"{k:<{w}}{s['Count']:>14}{s['Total']:>14.4f}{s['Min']:>17.4f}{s['Max']:>17.4f}{s['Avg']:>17.4f}"
                  for k, s in names.items()]
        lines.append('')
    return '\n'.join(lines)


# ------------------------------------------------------------------------------ user-marked objects
class Domain:
    """A category of user events (MXNet's profiler.Domain)."""

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return self.name

    def new_task(self, name):
        return Task(self, name)

    def new_frame(self, name):
        return Frame(self, name)

    def new_counter(self, name, value=None):
        return Counter(self, name, value)

    def new_marker(self, name):
        return Marker(self, name)


class Task:
    """A span from start() to stop() in its domain's category (also a context manager)."""

    def __init__(self, domain, name):
        self.domain, self.name, self._t0 = domain, name, None

    def start(self):
        self._t0 = time.perf_counter_ns()

    def stop(self):
        if self._t0 is None:
            raise GraphcError(f"profiler: {type(self).__name__} {self.name!r} stopped before it started")
        if _recording():
            record(str(self.domain), self.name, self._t0, time.perf_counter_ns())
        self._t0 = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __str__(self):
        return self.name


class Frame(Task):
    """A span, as Task (MXNet draws frames per iteration; here they are the same kind of event)."""


class Event(Task):
    """A span with a name only (category 'event')."""

    def __init__(self, name):
        super().__init__('event', name)


class Counter:
    """A value over time (a Chrome 'C' event per change while recording)."""

    def __init__(self, domain, name, value=None):
        self.domain, self.name, self.value = domain, name, None
        if value is not None:
            self.set_value(value)

    def set_value(self, value):
        self.value = value
        if _recording():
            t = time.perf_counter_ns()
            record('counter', self.name, t, t, {'value': value, 'domain': str(self.domain)})

    def increment(self, delta=1):
        self.set_value((self.value or 0) + delta)

    def decrement(self, delta=1):
        self.set_value((self.value or 0) - delta)

    def __iadd__(self, delta):
        self.increment(delta)
        return self

    def __isub__(self, delta):
        self.decrement(delta)
        return self

    def __str__(self):
        return self.name


class Marker:
    """An instant (mark(scope): 'global', 'process', 'thread', 'task' or 'marker', as MXNet's)."""

    def __init__(self, domain, name):
        self.domain, self.name = domain, name

    def mark(self, scope='process'):
        s = {'global': 'g', 'process': 'p', 'thread': 't', 'task': 't', 'marker': 't'}.get(scope)
        if s is None:
            raise GraphcError(f"profiler.Marker.mark: scope must be global, process, thread, task or marker, "
                              f"got {scope!r}")
        if _recording():
            t = time.perf_counter_ns()
            record('marker', self.name, t, t, {'s': s, 'domain': str(self.domain)})
