"""The `graphc` command: version, machine info, the op table, and `show` for MXNet symbol files."""
import argparse
import os
import platform
import re
import sys


def info():
    from . import __version__
    from .bench import cpu_features, package_version
    from .context import gpu_support
    lines = [f"graphc      {__version__}", f"python      {platform.python_version()} ({sys.executable})",
             f"platform    {platform.platform()}"]
    lines += [f"{m:<11} {package_version(m)}" for m in ('numpy', 'llvmlite', 'networkx', 'cupy')]
    try:
        name, simd = cpu_features()
        lines.append(f"cpu         {name}: {' '.join(simd) or 'no SIMD features reported'}")
    except Exception as e:
        lines.append(f"cpu         unknown ({e})")
    lines.append(f"cores       {os.cpu_count()}")
    ok, reason = gpu_support()
    lines.append("devices     cpu(0)" + (f", gpu: {reason}" if ok else f"; no GPU: {reason}"))
    return '\n'.join(lines)


def op_table():
    """Markdown table of every registered op (the README's op table is generated from this)."""
    from . import nd  # noqa: F401  registers the ops
    from .base import GraphcError
    from .registry import OPS
    rows = ["| op | kind | inputs | attributes | differentiable |", "|---|---|---|---|---|"]
    for name in sorted(OPS, key=lambda n: (n.startswith('_'), n.lower())):
        op = OPS[name]
        try:
            ins = op.inputs if op.variadic else ', '.join(op.input_names(_fill(op)))
        except GraphcError:  # (Custom: the registered op_type's arguments)
            ins = "the op_type's arguments"
        attrs = ', '.join(op.attrs) or '-'
        rows.append(f"| `{name}` | {op.kind} | {ins} | {attrs} | "
                    f"{'yes' if op.differentiable else 'no'} |")
    return '\n'.join(rows)


def _fill(op):
    """Attrs with placeholder values for required ones, to list the inputs of ops whose inputs depend on attrs."""
    out = {}
    for k, a in op.attrs.items():
        out[k] = a.default if a.default is not a.REQUIRED else {'int': 1, 'float': 0.0, 'bool': False, 'shape': (1, 1),
                                                                 'str': (a.choices or ('',))[0], 'axis': 0,
                                                                 'dtype': 'float32'}[a.type]
    return out


def _shape_arg(text):
    """`data=1,1,28,28` (or 1x1x28x28) -> ('data', (1, 1, 28, 28)); a bare `1,1,28,28` names the first input."""
    name, _, dims = text.rpartition('=')
    try:
        shape = tuple(int(d) for d in re.split(r'[,x]', dims))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=D1,D2,... with positive integer dims")
    return name or None, shape


def _plain(key):
    return key[4:] if key.startswith(('arg:', 'aux:')) else key


def check_params(graph, arrays, params, aux):
    """Compare a .params dict (arg:/aux: names) with the graph's variables (params, aux: ids of its parameter
    and aux-state variables). Returns (plain name -> shape of the arrays that fit, problem lines); an
    array fits when every dim the variable declares (not 0, MXNet's unknown) equals the array's."""
    by_name = {v.name: v for v in graph.inputs}
    shapes, problems = {}, []
    for key, a in arrays.items():
        name, v = _plain(key), by_name.get(_plain(key))
        if v is None:
            problems.append(f"extra: {key} {tuple(a.shape)} is not a variable of the graph")
            continue
        decl = v.extra.get('__shape__') or (v.shapes[0] if v.shapes else None)
        if decl is not None and (len(decl) != a.ndim or any(d and d != s for d, s in zip(decl, a.shape))):
            problems.append(f"shape mismatch: {name} is {tuple(a.shape)} in the file, the graph declares "
                            f"{tuple(0 if d is None else d for d in decl)}")
            continue
        if key[:4] in ('arg:', 'aux:') and (key[:4] == 'aux:') != (v in aux):
            problems.append(f"role mismatch: {key} is saved as {key[:3]}: but the graph uses it as "
                            f"{'an auxiliary state' if v in aux else 'an argument'}")
        shapes[name] = tuple(a.shape)
    have = {_plain(k) for k in arrays}
    problems += [f"missing: {v.name} {'(auxiliary state) ' if v in aux else ''}is not in the file"
                 for v in graph.inputs if v in params and v.name not in have and 'value' not in v.extra]
    return shapes, problems


def show(args):
    """`graphc show`: the graph's text form and layer table, optionally checked against a .params file
    and drawn as DOT. Returns the exit status: 0; 1 when the parameters do not match the graph; 2 when
    a file cannot be read, the shapes do not infer or the drawing fails."""
    from .base import GraphcError
    from .mxjson import load_json_file
    from .viz import _resolve, _summary, plot_network
    problems = []
    try:
        graph = load_json_file(args.symbol_file)._graph()
        arrays, pshapes = None, {}
        if args.params:
            from .serialization import load_ndarrays
            arrays = load_ndarrays(args.params)
            if not isinstance(arrays, dict):
                raise GraphcError(f"{args.params}: the arrays have no names, so they cannot be matched to the graph")
        names = {_plain(k) for k in arrays} if arrays is not None else None
        _, params, aux = _resolve(graph, param_names=names)
        if arrays is not None:
            pshapes, problems = check_params(graph, arrays, params, aux)
        # inputs: the variables that are not parameters (not in the file, not fed to a layer's weight slot)
        inputs = [v.name for v in graph.inputs if v not in params] or ['data']
        given = {name or inputs[0]: shape for name, shape in args.shape}
        unknown = sorted(set(given) - {v.name for v in graph.inputs})
        if unknown:
            raise GraphcError(f"--shape names {unknown}, which are not variables of the graph; inputs: {inputs}")
        graph, params, aux = _resolve(graph, dict(pshapes, **given) or None, names)
        print(f"{args.symbol_file}: {len(graph.nodes)} nodes, inputs: {', '.join(inputs)}")
        if arrays is not None:
            print(f"{args.params}: {len(arrays)} arrays, " +
                  (f"{len(problems)} problem(s):" if problems else "all match the graph"))
            print(''.join(f"  {line}\n" for line in problems), end='')
        print(f"\n{graph.text()}\n")
        _summary(graph, params, aux)
        if args.dot or args.render:
            d = plot_network(graph, title=os.path.basename(args.symbol_file).replace('-symbol.json', ''))
            if args.dot:
                print(f"wrote {d.save(args.dot)}")
            if args.render:
                print(f"wrote {d.render(args.render)}")
    except BrokenPipeError:  # `graphc show ... | head`: stop quietly, as other CLI tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (GraphcError, OSError) as e:
        print(f"graphc show: error: {e}", file=sys.stderr)
        return 2
    return 1 if problems else 0


def _threads_arg(text):
    """--threads '1,2' -> [1, 2]; None -> [graphc's thread count]."""
    from . import config
    from .base import GraphcError
    try:
        ns = [int(t) for t in text.split(',') if t] if text else [config.num_threads()]
    except ValueError:
        ns = []
    if not ns or min(ns) < 1:
        raise GraphcError(f"--threads wants thread counts, comma-separated (e.g. 1,2), got {text!r}")
    return ns


def bench(args):
    """`graphc bench`: the standard workloads, or an exported model given its symbol file: eager vs hybridized
    (vs NumPy, vs PyTorch where installed) side by side; a table, optionally JSON and a PNG chart."""
    import json
    from . import bench as B
    from .base import GraphcError
    from .progress import Progress

    def bar(desc):
        return lambda it: Progress(it, desc=desc, unit='round', leave=False)
    try:
        if args.reps < 1:
            raise GraphcError(f"--reps must be at least 1, got {args.reps}")
        if args.png:
            B.need_matplotlib()  # say so now, not after minutes of timing
        B.SEED[0] = args.seed
        only = [k for o in args.only for k in o.split(',') if k]
        threads = _threads_arg(args.threads)
        if len(threads) > 1 and not args.peers:
            raise GraphcError("several --threads need --peers (one table per thread count)")
        if args.peers and args.symbol_file:
            raise GraphcError("--peers times the standard workloads (the peers have no twin of a symbol file)")
        if args.symbol_file:
            shapes = {name or 'data': shape for name, shape in args.shape} or None
            if not shapes:
                raise GraphcError("graphc bench SYMBOL.json needs the input shapes: --shape data=1,3,224,224")
            name = os.path.basename(args.symbol_file)
            work = [(name, f"{name} {shapes}", lambda p: B.symbol_file(args.symbol_file, args.params, shapes,
                                                                      args.reps, p))]
        elif args.peers:
            if args.png:
                raise GraphcError("--png draws one thread count's table: not with --peers")
            names = [k for k in args.peers.split(',') if k] if args.peers != 'all' else None
            results, missing = B.run_peers(args.reps, args.quick, only, threads, names, bar)
            print(B.peer_table(results, missing), flush=True)
            if args.json:
                with open(args.json, 'w') as f:
                    json.dump(B.report({str(n): r for n, r in results.items()}, reps=args.reps, quick=args.quick,
                                       only=only, threads=threads, peers=args.peers, missing=missing, seed=args.seed), f,
                              indent=2)
                print(f"wrote {args.json}")
            return 0
        else:
            work = B.standard(args.reps, args.quick, only)
        undo = B.set_threads(threads[0]) if args.threads else (lambda: None)
        try:
            results = B.run(work, bar)
        finally:
            undo()
        print(B.table(results), flush=True)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(B.report(results, reps=args.reps, quick=args.quick, only=only,
                                   symbol_file=args.symbol_file, seed=args.seed), f, indent=2)
            print(f"wrote {args.json}")
        if args.png:
            print(f"wrote {B.chart(results, args.png)}")
    except (GraphcError, OSError, AssertionError) as e:  # AssertionError: variants disagree, so no timings
        print(f"graphc bench: error: {e}", file=sys.stderr)
        return 2
    return 0


def compile_model(args):
    """`graphc compile`: the generated code of an exported model (inference pipeline) written to --out: the
    optimized IR, the CPU kernels' LLVM IR, the CUDA source, and PTX through nvcc. Needs no GPU.
    Exit status: 0 ok; 2 a file cannot be read, the shapes do not infer or nvcc fails or is missing."""
    from .base import GraphcError
    from .mxjson import load_json_file
    from .passes import run_pipeline
    from .runtime import cpu, cuda
    from .viz import _resolve
    ok = {'cpu': ('ir', 'llvm'), 'cuda': ('ir', 'cuda', 'ptx')}[args.target]
    emit = args.emit or [ok[1]]
    bad = [e for e in emit if e not in ok]
    if bad:
        print(f"graphc compile: error: --target {args.target} emits {', '.join(ok)}, not {', '.join(bad)}",
              file=sys.stderr)
        return 2
    try:
        graph = load_json_file(args.symbol_file)._graph()
        pshapes = {}
        if args.params:
            from .serialization import load_ndarrays
            pshapes = {_plain(k): tuple(a.shape) for k, a in load_ndarrays(args.params).items()}
        _, params, _ = _resolve(graph, param_names=set(pshapes) or None)
        inputs = [v.name for v in graph.inputs if v not in params] or ['data']
        given = {name or inputs[0]: shape for name, shape in args.shape}
        if not given:
            raise GraphcError(f"graphc compile needs the input shapes, e.g. --shape {inputs[0]}=1,1,28,28")
        graph, _, _ = _resolve(graph, dict(pshapes, **given), set(pshapes) or None)
        if any(s is None or None in s for n in graph.nodes for s in (n.shapes or [None])):
            raise GraphcError("shapes do not infer from the given --shape (and --params): give every input's shape")
        from .runtime import backend
        with backend.use(args.target):  # the target's passes (conv_pool is the CPU's)
            graph, _ = run_pipeline(graph, 'inference', tag='compile')
        os.makedirs(args.out, exist_ok=True)
        stem = os.path.basename(args.symbol_file).replace('-symbol.json', '').replace('.json', '')
        base = os.path.join(args.out, stem)
        wrote, listing = [], []
        if 'ir' in emit:
            with open(base + '.ir.txt', 'w') as f:
                f.write(graph.text() + '\n')
            wrote.append(base + '.ir.txt')
        if args.target == 'cuda':
            rows = cuda.graph_kernels(graph)
            kernels = cuda.kernels_of(graph)
            src = cuda.module_source(kernels)
            for n, how, d in rows:
                ks = cuda.node_kernels(how, d)
                epi = d[3] if how == 'anchor' else None
                listing += [f"{n.name:<28} {k.describe()}" + ('  (epilogue, after the GEMM)' if k is epi else
                                                             '  (then GEMMs)' if k.kind == 'im2col' else '')
                            for k in ks] or \
                    [f"{n.name:<28} {'GEMM on the device (cuBLAS)' if how == 'device' else f'host: {d}'}"]
            if 'cuda' in emit:
                with open(base + '.cu', 'w') as f:
                    f.write(src)
                wrote.append(f"{base}.cu ({len(kernels)} kernels)")
            if 'ptx' in emit:
                ptx = cuda.nvcc(src, mode='ptx', archs=(args.arch,))
                with open(f"{base}.{args.arch}.ptx", 'wb') as f:
                    f.write(ptx)
                wrote.append(f"{base}.{args.arch}.ptx")
        elif 'llvm' in emit:
            for n in graph.nodes:
                op = n.op
                if n.is_var or not hasattr(op, 'subgraph'):
                    continue
                ep = cpu.split_anchor(op)
                sub = ep[2].subgraph if ep else op.subgraph
                text = _cpu_ir(cpu, sub)
                if text is None:
                    listing.append(f"{n.name:<28} {'>'.join(op.ops())}: NumPy reference (no CPU kernel)")
                    continue
                path = f"{base}.{n.name}.ll"
                with open(path, 'w') as f:
                    f.write(text)
                wrote.append(path)
                listing.append(f"{n.name:<28} {'>'.join(op.ops())}" + (' (epilogue after the GEMM/conv)' if ep else ''))
    except (GraphcError, OSError) as e:
        print(f"graphc compile: error: {e}", file=sys.stderr)
        return 2
    print(f"kernels ({args.target}):")
    print(''.join(f"  {ln}\n" for ln in listing), end='')
    print(''.join(f"wrote {w}\n" for w in wrote), end='')
    return 0


def _cpu_ir(cpu, sub):
    """The LLVM IR cpu.py builds for a fused subgraph (the dispatch of cpu._kernel_for), or None."""
    dts = {cpu.np.dtype(d) for n in sub.nodes for d in (n.dtypes or [])}
    dtype = dts.pop() if len(dts) == 1 else None
    if dtype not in (cpu.np.float32, cpu.np.float64):
        return None
    reds = [n for n in sub.nodes if not n.is_var and n.op.kind == 'reduce']
    if not reds:
        return cpu.build_ir(sub, dtype)[0]
    if len(reds) == 1 and reds[0].op.name in cpu.ROW_REDUCE:
        return cpu.build_row_ir(sub, dtype, reds[0])[0] or cpu.build_col_ir(sub, dtype, reds[0])[0]
    return None


def _compile_parser(sub):
    cp = sub.add_parser('compile', help="write a model's generated code: IR, LLVM IR, CUDA C, PTX (no GPU needed)",
                        description="Compile an exported model (inference pipeline) and write the generated code.",
                        epilog="exit status: 0 ok; 2 a file cannot be read, the shapes do not infer, or nvcc failed")
    cp.add_argument('symbol_file', help='PREFIX-symbol.json')
    cp.add_argument('--params', help='PREFIX-0000.params (its shapes help inference)')
    cp.add_argument('--shape', action='append', default=[], type=_shape_arg, metavar='NAME=D1,D2,...',
                    help='an input shape, e.g. data=1,1,28,28 (repeatable; no NAME: the first input)')
    cp.add_argument('--target', choices=('cpu', 'cuda'), default='cuda')
    cp.add_argument('--emit', action='append', choices=('ir', 'llvm', 'cuda', 'ptx'),
                    help='what to write (repeatable; default: llvm for cpu, cuda for cuda)')
    cp.add_argument('--arch', default='sm_80', help='PTX target architecture (default sm_80)')
    cp.add_argument('--out', required=True, metavar='DIR', help='output directory')


def export_onnx(args):
    """`graphc export-onnx`: an MXNet (or graphc) symbol file and its .params as an ONNX model. Exit status: 0; 2 when
    a file cannot be read or the graph does not export."""
    from .base import GraphcError
    if not args.symbol_file or not args.out:
        print("graphc export-onnx: give PREFIX-symbol.json and --out model.onnx", file=sys.stderr)
        return 2
    try:
        from .mxjson import load_json_file
        from .onnx import export_model
        from .onnx.export import _load_params
        sym = load_json_file(args.symbol_file)
        params = _load_params(args.params)
        data = [n for n in sym.list_inputs() if n not in params]
        given = {}
        for name, shape in args.shape:
            given[name or (data[0] if data else '')] = shape
        unknown = sorted(set(given) - set(data))
        missing = [n for n in data if n not in given]
        if unknown or missing:
            raise GraphcError(f"--shape: data inputs are {data}" + (f"; unknown {unknown}" if unknown else '') +
                              (f"; missing {missing}" if missing else ''))
        export_model(sym, params, [given[n] for n in data], onnx_file_path=args.out, dynamic=args.dynamic,
                     opset_version=args.opset)
    except GraphcError as e:
        print(f"graphc export-onnx: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


def main(argv=None):
    from . import __version__
    p = argparse.ArgumentParser(prog='graphc', description="graphc: Gluon-style deep learning with a graph compiler")
    p.add_argument('--version', action='version', version=f'graphc {__version__}')
    sub = p.add_subparsers(dest='cmd')
    sub.add_parser('info', help='versions, CPU features and devices')
    sub.add_parser('ops', help='the table of registered ops (Markdown)')
    sp = sub.add_parser('show', help="an MXNet symbol file's graph, layer table and DOT drawing",
                        description="Print a symbol file's graph (shapes inferred with --shape) and layer table.",
                        epilog="exit status: 0 ok; 1 the --params file does not match the graph; 2 a file cannot be "
                               "read, the shapes do not infer or drawing failed")
    sp.add_argument('symbol_file', help='PREFIX-symbol.json')
    sp.add_argument('--params', help='PREFIX-0000.params: check it against the graph and use its shapes')
    sp.add_argument('--shape', action='append', default=[], type=_shape_arg, metavar='NAME=D1,D2,...',
                    help='an input shape, e.g. data=1,1,28,28 (repeatable; no NAME: the first input)')
    sp.add_argument('--dot', metavar='OUT.dot', help='write the network as Graphviz DOT')
    sp.add_argument('--render', metavar='OUT.svg', help='draw it with Graphviz dot (format from the extension)')
    bp = sub.add_parser('bench', help='eager vs hybridized (and NumPy) timings, side by side',
                        description="Time the standard workloads (graphc eager vs hybridized vs NumPy, and PyTorch "
                                    "eager where installed), or an exported model given its symbol file.")
    bp.add_argument('symbol_file', nargs='?', help='PREFIX-symbol.json (optional: an exported model to time)')
    bp.add_argument('--params', help='PREFIX-0000.params for the symbol file')
    bp.add_argument('--shape', action='append', default=[], type=_shape_arg, metavar='NAME=D1,D2,...',
                    help='input shape for the symbol file, e.g. data=1,1,28,28 (repeatable)')
    bp.add_argument('--reps', type=int, default=30,
                    help='timed repetitions per variant, scaled per workload (median reported)')
    bp.add_argument('--quick', action='store_true', help='standard workloads: small sizes only')
    bp.add_argument('--only', action='append', default=[], metavar='NAME[,NAME]',
                    help='run only these standard workloads: mlp1 mlp64 mlp-train lenet-train lenet-infer chain1k '
                         'chain4k membound lstm')
    bp.add_argument('--png', metavar='OUT.png', help='draw a bar chart of the time ratios (needs matplotlib)')
    bp.add_argument('--json', metavar='OUT.json', help='write the results as JSON')
    bp.add_argument('--peers', nargs='?', const='all', metavar='PEER[,PEER]',
                    help='also time PyTorch (eager, torch.compile), JAX jit and MXNet 1.9 (GRAPHC_BENCH_MXNET_PYTHON) '
                         'where installed, each in its own process, on the same weights and inputs (default: all)')
    bp.add_argument('--seed', type=int, default=0,
                    help='seed of the order the variants run in, drawn anew each round (default 0; reported)')
    bp.add_argument('--threads', metavar='N[,N]',
                    help='thread counts for graphc, NumPy\'s BLAS, torch and the peers (several: with --peers)')
    _compile_parser(sub)
    op = sub.add_parser('export-onnx', help='a symbol file and its .params as an ONNX model (needs graphc[onnx])',
                        description="Convert PREFIX-symbol.json (MXNet's or graphc's) with its .params to ONNX.",
                        epilog="exit status: 0 ok; 2 a file cannot be read or the graph does not export")
    op.add_argument('symbol_file', nargs='?', help='PREFIX-symbol.json')
    op.add_argument('--params', help='PREFIX-0000.params (arg:/aux: names)')
    op.add_argument('--shape', action='append', default=[], type=_shape_arg, metavar='NAME=D1,D2,...',
                    help='a data input shape, e.g. data=1,3,224,224 (repeatable; no NAME: the first input)')
    op.add_argument('--out', metavar='MODEL.onnx', help='the ONNX file to write')
    op.add_argument('--dynamic', action='store_true', help='make the batch dimension (dim 0) symbolic')
    op.add_argument('--opset', type=int, help='ONNX opset version (default: graphc.onnx.DEFAULT_OPSET)')
    args = p.parse_args(argv)
    if args.cmd == 'export-onnx':
        return export_onnx(args)
    if args.cmd == 'compile':
        return compile_model(args)
    if args.cmd == 'bench':
        return bench(args)
    if args.cmd == 'info':
        print(info())
    elif args.cmd == 'ops':
        print(op_table())
    elif args.cmd == 'show':
        return show(args)
    else:
        p.print_help()
    return 0


if __name__ == '__main__':
    sys.exit(main())
