"""Random graphs from the fuzzer's generator (tools/fuzz.py) over the exportable ops, exported to ONNX and run by
onnxruntime, against graphc's interpreter (the spec), at the fuzzer's tolerances.

    python tools/onnx_check.py --seed 0 --count 1000

A case passes when onnxruntime's outputs agree; it is skipped (and counted, with the reason) when onnxruntime has
no kernel for one of its ops at its dtype (float64 convolutions, ...). Anything else is a failure, printed with
the case's seed.
"""
import argparse
import contextlib
import sys
import time

import numpy as np

import fuzz
from graphc.onnx.export import EXPORTERS, graph_to_model

ORT_TOL = 1e-5   # a floor on the fuzzer's float tolerances: onnxruntime's kernels sum and approximate differently
# ops the fuzzer's families call exact among graphc's own paths (one NumPy kernel), but which onnxruntime computes
# with its own summation order (pooling sums) or GEMMs and activations (the RNN's recurrence)
ORT_FAMILY = {'RNN': 'gemm', 'Pooling': 'reduction'}


@contextlib.contextmanager
def exportable_generators():
    """fuzz.generate, drawing only ops that have an ONNX converter."""
    saved = fuzz.GENERATORS
    fuzz.GENERATORS = {k: v for k, v in saved.items() if k in EXPORTERS}
    try:
        yield
    finally:
        fuzz.GENERATORS = saved


def generate(seed):
    with exportable_generators():
        return fuzz.generate(seed)


def session(model):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 4   # (a kernel that refuses float64 at run time is counted, not logged)
    return ort.InferenceSession(model.SerializeToString(), so, providers=['CPUExecutionProvider'])


def check_case(case, opset=None, roundtrip=False):
    """None when onnxruntime agrees with the interpreter; ('skip', why) or ('fail', why) otherwise.
    roundtrip: also import the ONNX file back (gc.onnx.import_model) and compare its outputs; a graph whose ONNX
    ops the importer lacks is counted as ('noimport', why)."""
    from graphc.interpreter import interpret
    o = fuzz.Oracle(case, ())
    g = o.graph()
    feed = o.feed(g)
    with np.errstate(all='ignore'):
        want = interpret(g, feed)
    saved = dict(fuzz.FAMILY)
    fuzz.FAMILY.update(ORT_FAMILY)
    try:
        o.eager()   # its tolerances per output
    finally:
        fuzz.FAMILY.clear()
        fuzz.FAMILY.update(saved)
    data = [v for v in g.inputs if 'value' not in v.extra]
    values = {v: np.asarray(v.extra['value']) for v in g.inputs if 'value' in v.extra}
    try:
        model = graph_to_model(g, data, values, [feed[v].shape for v in data], [feed[v].dtype for v in data],
                               opset)
    except Exception as e:  # noqa: BLE001  (an exportable op that does not export is a failure to report)
        if 'which MXNet does not expose' in str(e) or 'hidden from MXNet' in str(e):   # the case reads RNN's reserve, graphc's internal output
            return 'skip', "reads an output MXNet does not expose (RNN's reserve)"
        if 'cannot be exported to ONNX: ' in str(e):   # a converter's documented limit (see NOT_EXPORTABLE's doc)
            return 'skip', 'not exportable: ' + str(e).split('cannot be exported to ONNX: ')[-1][:100]
        return 'fail', f"export: {type(e).__name__}: {e}"
    try:
        s = session(model)
    except Exception as e:  # noqa: BLE001
        msg = str(e)
        if 'NOT_IMPLEMENTED' in msg or 'Could not find an implementation' in msg:
            what = msg.split('Could not find an implementation for ')[-1].split(' node')[0]
            return 'skip', f"onnxruntime has no kernel for {what} at this dtype"
        return 'fail', f"onnxruntime rejects the model: {msg[:400]}"
    names = [i.name for i in s.get_inputs()]
    by_name = {v.name: feed[v] for v in data}
    try:
        got = s.run(None, {n: by_name[n] for n in names})
    except Exception as e:  # noqa: BLE001
        if 'does not support double' in str(e):
            return 'skip', 'onnxruntime has no kernel for ' + str(e).split('running ')[-1].split(' node')[0] + \
                ' at this dtype'
        return 'fail', f"onnxruntime run: {str(e)[:400]}"
    for i, (a, w, (rtol, atol, fam)) in enumerate(zip(got, want, o.tols)):
        if fam != 'exact':
            rtol, atol = max(rtol, ORT_TOL), max(atol, ORT_TOL)
        msg = fuzz.compare(np.asarray(a), np.asarray(w), rtol, atol, f"output {i} ({fam})")
        if msg:
            return 'fail', msg
    return _roundtrip(model, by_name, want, o.tols) if roundtrip else None


def _roundtrip(model, feed, want, tols):
    from graphc.base import GraphcError, GraphcLoadError
    from graphc.onnx.importer import import_model
    try:
        sym, args, aux = import_model(model.SerializeToString())
    except GraphcLoadError as e:
        if 'not supported by graphc' in str(e):
            return 'noimport', str(e).split('): ', 1)[-1].replace('not supported by graphc: ', '')[:80]
        return 'fail', f"import: {e}"
    vals = {**{k: v.asnumpy() for k, v in {**args, **aux}.items()}, **feed}
    try:
        with np.errstate(all='ignore'):
            got = [g.asnumpy() for g in sym.eval(**{k: v for k, v in vals.items() if k in sym.list_inputs()})]
    except GraphcError as e:   # a zero-size constant comes back as MXNet's `_zeros`, whose 0 means "unknown"
        if 'cannot infer the shape of' in str(e) and '0 for unknown' in str(e):
            return 'noimport', "a zero-size constant (MXNet reads its 0 as an unknown dim)"
        raise
    for i, (a, w, (rtol, atol, fam)) in enumerate(zip(got, want, tols)):
        if fam != 'exact':   # the ONNX form of an op can come back as other graphc ops (a decomposed BatchNorm)
            rtol, atol = max(rtol, ORT_TOL), max(atol, ORT_TOL)
        msg = fuzz.compare(a, np.asarray(w), rtol, atol, f"round trip output {i} ({fam})")
        if msg:
            return 'fail', msg
    return None


def run(seed=0, count=1000, log=print, roundtrip=False):
    """Check `count` cases from `seed` on; returns (passed, skipped {reason: n}, failures [(seed, why)], seconds).
    With roundtrip, skipped also counts the graphs the importer cannot read back ('import: ...')."""
    t0 = time.perf_counter()
    passed, skipped, failures = 0, {}, []
    for s in range(seed, seed + count):
        r = check_case(generate(s), roundtrip=roundtrip)
        if r is None:
            passed += 1
        elif r[0] == 'noimport':
            passed += 1
            skipped['import: ' + r[1]] = skipped.get('import: ' + r[1], 0) + 1
        elif r[0] == 'skip':
            skipped[r[1]] = skipped.get(r[1], 0) + 1
        else:
            failures.append((s, r[1]))
            log(f"seed {s}: {r[1]}")
    return passed, skipped, failures, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--count', type=int, default=1000)
    p.add_argument('--roundtrip', action='store_true', help='also import each ONNX file back and compare')
    a = p.parse_args(argv)
    passed, skipped, failures, secs = run(a.seed, a.count, roundtrip=a.roundtrip)
    print(f"{a.count} graphs (seeds {a.seed}..{a.seed + a.count - 1}) in {secs:.0f} s: {passed} agree with "
          f"onnxruntime, {sum(skipped.values())} skipped, {len(failures)} fail")
    for why, n in sorted(skipped.items(), key=lambda kv: -kv[1]):
        print(f"  skipped {n}: {why}")
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
