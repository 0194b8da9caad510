"""The ONNX coverage tables of docs/ONNX.md, generated from the converters themselves: each registry op is built
by the fuzzer's generator for it (a few seeds: its attribute variants), exported, and the ONNX op types its node
became are listed; ops without a converter give NOT_EXPORTABLE's reason. `python tools/onnx_table.py` prints it
(test-side: it needs the fuzzer's generator, tools/fuzz.py)."""
import functools

import numpy as np

from graphc.onnx.export import EXPORTERS, NOT_EXPORTABLE, graph_to_model

SEEDS = range(12)
NOTES = {   # MXNet conventions and the converters' limits (each limit raises, naming the node)
    'Pooling': "`valid` floors, `full` ceils: its overhang is extra end padding (max) or a ones-convolution divided "
               "by MXNet's count (avg, sum; `count_include_pad` counts padding, never the overhang)",
    'BatchNorm': "`fix_gamma` exports ones for gamma; predict mode or `use_global_stats`: BatchNormalization; a "
                 "training-mode graph normalizes by the batch's statistics",
    'Reshape': "codes 0/-1/-2/-3/-4 resolved at export; dynamic dims become ONNX's 0 (copy) or -1",
    'RNN': "one ONNX LSTM/GRU/RNN a layer, gates reordered (LSTM ifco -> iofc, GRU rzn -> zrh, "
           "linear_before_reset=1); not exportable: lstm_state_clip_*, dropout in training mode",
    'Dropout': "predict mode (or p=0) only: training-mode dropout is random",
    'Deconvolution': "not exportable: target_shape",
    'softmax': "temperature divides first; not exportable: use_length",
    'log_softmax': "temperature divides first; not exportable: use_length",
    'Flatten': "ONNX Flatten(axis=1), as MXNet's",
    'SliceChannel': "Split into equal parts, squeezed with squeeze_axis",
    'broadcast_mod': "NumPy's (and MXNet's) sign of the divisor, bit for bit: fmod moved onto the divisor's side",
    'argmax': "indices cast to the input's dtype, as MXNet returns them",
    'argmin': "indices cast to the input's dtype, as MXNet returns them",
    'take': "modes clip/wrap/raise", 'pick': "modes clip/wrap/raise",
    '_slice_assign': "static shapes only", '_slice_assign_scalar': "static shapes only",
}


def onnx_ops_of(name):
    """The ONNX op types a node of registry op `name` exports to (over the generator's variants), and whether some
    variant is not exportable (its reason)."""
    import fuzz
    types, limits = set(), set()
    for s in SEEDS:
        b = fuzz.Builder(np.random.default_rng(s), 'float32', train=False)
        fuzz.GENERATORS[name](b, name)
        if not b.nodes or b.nodes[-1]['op'] != name:
            continue
        case = {'seed': s, 'train': False, 'inputs': b.inputs, 'nodes': b.nodes,
                'outputs': [(len(b.nodes) - 1, 0)]}
        o = fuzz.Oracle(case, ())
        g = o.graph()
        feed = o.feed(g)
        data = [v for v in g.inputs if 'value' not in v.extra]
        target = g.outputs[0][0].name
        try:
            m = graph_to_model(g, data, {}, [feed[v].shape for v in data], [feed[v].dtype for v in data])
        except Exception as e:  # noqa: BLE001
            limits.add(str(e).split('cannot be exported to ONNX: ')[-1][:90])
            continue
        types |= {n.op_type for n in m.graph.node if n.name.split('/')[0] == target}
    return sorted(types), sorted(limits)


@functools.lru_cache(maxsize=1)
def coverage_table():
    from graphc import nd  # noqa: F401  (registers the ops)
    from fuzz import GENERATORS
    from graphc.registry import OPS
    from graphc.onnx.importer import IMPORTERS
    rows = ["| graphc op | ONNX ops | notes |", "|---|---|---|"]
    for name in sorted(OPS, key=lambda n: (n.startswith('_'), n.lower())):
        if name not in EXPORTERS:
            rows.append(f"| `{name}` | - | not exportable: {NOT_EXPORTABLE.get(name, 'no converter')} |")
            continue
        types, limits = onnx_ops_of(name) if name in GENERATORS else ([], [])
        note = '; '.join(([NOTES[name]] if name in NOTES else []) + [f"not exportable: {x}" for x in limits])
        rows.append(f"| `{name}` | {', '.join(types) or 'see the converter'} | {note} |")
    n_ok = sum(n in EXPORTERS for n in OPS)
    rows.append('')
    rows.append(f"{n_ok} of {len(OPS)} registry ops export. Import reads these ONNX op types: "
                + ', '.join(f"`{t}`" for t in sorted(IMPORTERS)) + '.')
    return '\n'.join(rows)


if __name__ == '__main__':
    print(coverage_table())
