"""A small progress bar for training loops, like tqdm, with no dependencies.

    for data, label in Progress(loader, desc='epoch 1', unit='samples', unit_scale=batch_size):
        ...
        bar.set_postfix(loss=0.31, acc=0.91)

On a terminal it redraws one line with \\r (at most every `mininterval` s); otherwise (CI logs,
files) it prints a full line every `interval` s and a final one, so logs stay short.
"""
import sys
import time


def _fmt_time(s):
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def _fmt_num(x):
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


class Progress:
    """Progress(iterable=None, total=None, desc='', unit='it', unit_scale=1, file=sys.stderr, ...).

    total defaults to len(iterable). unit_scale multiplies the count (e.g. batch size, to count
    samples while iterating batches). Use as an iterable wrapper or call update(n) by hand."""

    def __init__(self, iterable=None, total=None, desc='', unit='it', unit_scale=1, file=None, width=30,
                 mininterval=0.1, interval=10.0, disable=False, leave=True):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        self.iterable, self.desc, self.unit, self.unit_scale = iterable, desc, unit, unit_scale
        self.total = None if total is None else total * unit_scale
        self.file = file if file is not None else sys.stderr
        self.width, self.disable, self.leave = width, disable, leave
        try:
            self.tty = self.file.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.interval = mininterval if self.tty else interval
        self.n, self.postfix, self.closed = 0, {}, False
        self.start = self._last = time.monotonic()
        self._last_len = 0

    def __iter__(self):
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __len__(self):
        return len(self.iterable) if self.iterable is not None else int(self.total or 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1):
        self.n += n * self.unit_scale
        if self.disable:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._draw(now)

    def set_postfix(self, **kw):
        """Values shown after the rate, e.g. set_postfix(loss=0.31, acc=0.91); NDArrays/NumPy scalars are fine."""
        self.postfix = {k: float(v) if hasattr(v, 'item') or hasattr(v, 'asscalar') else v for k, v in kw.items()}

    def set_description(self, desc):
        self.desc = desc

    def format(self, now=None):
        """The status line: 'desc: 45%|#####     | 450/1000 [00:03<00:04, 130.2 it/s, loss=0.31]'."""
        el = (now or time.monotonic()) - self.start
        rate = self.n / el if el > 0 else 0.0
        n = _fmt_num(self.n)
        head = f"{self.desc}: " if self.desc else ''
        if self.total:
            frac = min(self.n / self.total, 1.0)
            fill = int(frac * self.width)
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            s = (f"{head}{frac * 100:3.0f}%|{'#' * fill}{' ' * (self.width - fill)}| {n}/{_fmt_num(self.total)} "
                 f"[{_fmt_time(el)}<{_fmt_time(eta)}, {rate:.1f} {self.unit}/s")
        else:
            s = f"{head}{n} {self.unit} [{_fmt_time(el)}, {rate:.1f} {self.unit}/s"
        for k, v in self.postfix.items():
            s += f", {k}={_fmt_num(v)}"
        return s + ']'

    def _draw(self, now=None):
        s = self.format(now)
        if self.tty:
            pad = ' ' * max(0, self._last_len - len(s))
            self.file.write('\r' + s + pad)
            self._last_len = len(s)
        else:
            self.file.write(s + '\n')
        self.file.flush()

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.disable:
            return
        if self.leave:
            self._draw()
            if self.tty:
                self.file.write('\n')
        elif self.tty:
            self.file.write('\r' + ' ' * self._last_len + '\r')
        self.file.flush()
