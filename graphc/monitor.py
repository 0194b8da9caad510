"""mx.monitor (mx.mon): MXNet's Monitor, statistics of an executor's arrays every `interval` batches.

install(exe) hooks a bound executor (or Module.install_monitor); between tic() and toc() each forward reports
its outputs (monitor_all=True: every node's output, computed again by the reference interpreter, named
`<node>_output`), and toc() adds the arguments and auxiliary states; names are filtered by `pattern`.
"""
import logging
import math
import re

from .ndarray.ndarray import NDArray


def _rms(x):
    from . import nd
    return nd.norm(x) / math.sqrt(x.size)


class Monitor:
    def __init__(self, interval, stat_func=None, pattern='.*', sort=False, monitor_all=False):
        self.stat_func = stat_func or _rms  # MXNet's default: norm(x) / sqrt(size)
        self.interval, self.sort, self.monitor_all = interval, sort, monitor_all
        self.re_prog = re.compile(pattern)
        self.activated, self.queue, self.step, self.exes = False, [], 0, []

    def stat_helper(self, name, array):
        """The executor's callback: queue stat_func(array) while activated, for names matching pattern."""
        if self.activated and self.re_prog.match(name):
            self.queue.append((self.step, name, self.stat_func(array)))

    def install(self, exe):
        exe.set_monitor_callback(self.stat_helper, self.monitor_all)
        self.exes.append(exe)

    def tic(self):
        """Start collecting for this batch (every interval-th call); call before forward."""
        if self.step % self.interval == 0:
            self.queue, self.activated = [], True
        self.step += 1

    def toc(self):
        """Stop collecting: [(step, name, stat as text)], the arguments and aux states included."""
        if not self.activated:
            return []
        for exe in self.exes:
            named = list(zip(exe._symbol.list_arguments(), exe.arg_arrays)) + \
                list(zip(exe._symbol.list_auxiliary_states(), exe.aux_arrays))
            self.queue += [(self.step, n, self.stat_func(a)) for n, a in named if self.re_prog.match(n)]
        self.activated = False
        if self.sort:
            self.queue.sort(key=lambda q: q[1])
        res = []
        for step, name, stats in self.queue:
            stats = [stats] if isinstance(stats, NDArray) else list(stats)
            res.append((step, name, ''.join((str(v.asscalar()) if v.shape in ((1,), ()) else str(v.asnumpy()))
                                            + '\t' for v in stats)))
        self.queue = []
        return res

    def toc_print(self):
        for step, name, text in self.toc():
            logging.info('Batch: {:7d} {:30s} {:s}'.format(step, name, text))
