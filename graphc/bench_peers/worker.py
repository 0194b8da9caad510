"""A benchmark peer's process: `python worker.py BACKEND THREADS` runs one framework's twin of a `graphc bench`
workload, driven by JSON lines on stdin, one reply line each on stdout. It needs only NumPy and the framework, not
graphc: it runs under another Python too (a 3.8 venv with MXNet 1.9.1). Arrays travel as .npz/.npy files, never as
pickles. BACKEND is a module beside this file (torch_peer, jax_peer, mxnet_peer, graphc_peer) or on PYTHONPATH (a
test's fake peer), with build(spec, arrays) -> step (or None), value(result) -> ndarray, sync(result).

  {"cmd": "ping"}                                     -> {}     ready: the framework imported
  {"cmd": "build", "spec": {...}, "arrays": "A.npz"} -> {"twin": false when the backend has none (build: None)}
  {"cmd": "value", "out": "O.npy"}                    -> {}     one call; its output (or loss) saved to O.npy
  {"cmd": "rep"}                                      -> {"t": seconds}   one call, timed here, waited for
  {"cmd": "quit"}
A failure answers {"error": "..."} and the worker waits for the next command.
"""
import importlib
import json
import os
import sys
import time

import numpy as np


def pin(threads):
    """Keep this process on its first `threads` allowed cores (the peers whose thread pools size themselves to
    the cores they see: XLA's)."""
    if hasattr(os, 'sched_setaffinity'):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cores[:max(1, threads)])


def main(argv):
    pin(int(argv[2]))
    backend = importlib.import_module(argv[1])
    replies, sys.stdout = sys.stdout, sys.stderr   # a framework's chatter must not reach the replies
    step = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg['cmd'] == 'quit':
            break
        try:
            reply = {}
            if msg['cmd'] == 'ping':
                pass
            elif msg['cmd'] == 'build':
                with np.load(msg['arrays'], allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                step = backend.build(msg['spec'], arrays)
                reply['twin'] = step is not None
            elif msg['cmd'] == 'value':
                np.save(msg['out'], np.asarray(backend.value(step()), np.float32), allow_pickle=False)
            elif msg['cmd'] == 'rep':
                t0 = time.perf_counter()
                backend.sync(step())
                reply['t'] = time.perf_counter() - t0
            else:
                raise ValueError('unknown command %r' % msg['cmd'])
        except Exception as e:   # the parent names the peer and the workload
            reply = {'error': '%s: %s' % (type(e).__name__, e)}
        replies.write(json.dumps(reply) + '\n')
        replies.flush()


if __name__ == '__main__':
    main(sys.argv)
