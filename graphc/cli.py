"""The `graphc` command: version, machine info and the op table."""
import argparse
import platform
import sys


def _version(mod):
    try:
        return __import__(mod).__version__
    except ImportError:
        return 'not installed'
    except Exception as e:  # a broken install should not break `graphc info`
        return f'error: {e}'


def cpu_features():
    """The host CPU name and the SIMD features LLVM sees (what generated code may use)."""
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    feats = llvm.get_host_cpu_features()
    on = sorted(k for k, v in feats.items() if v)
    simd = [f for f in ('sse4.2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'neon', 'sve') if f in on]
    return llvm.get_host_cpu_name(), simd


def info():
    from . import __version__
    from .context import gpu_support
    lines = [f"graphc      {__version__}", f"python      {platform.python_version()} ({sys.executable})",
             f"platform    {platform.platform()}"]
    lines += [f"{m:<11} {_version(m)}" for m in ('numpy', 'llvmlite', 'networkx', 'cupy')]
    try:
        name, simd = cpu_features()
        lines.append(f"cpu         {name}: {' '.join(simd) or 'no SIMD features reported'}")
    except Exception as e:
        lines.append(f"cpu         unknown ({e})")
    import os
    lines.append(f"cores       {os.cpu_count()}")
    ok, reason = gpu_support()
    lines.append("devices     cpu(0)" + (f", gpu: {reason}" if ok else f"; no GPU: {reason}"))
    return '\n'.join(lines)


def op_table():
    """Markdown table of every registered op (the README's op table is generated from this)."""
    from . import nd  # noqa: F401  registers the ops
    from .registry import OPS
    rows = ["| op | kind | inputs | attributes | differentiable |", "|---|---|---|---|---|"]
    for name in sorted(OPS, key=lambda n: (n.startswith('_'), n.lower())):
        op = OPS[name]
        ins = op.inputs if op.variadic else ', '.join(op.input_names(_fill(op)))
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


def main(argv=None):
    from . import __version__
    p = argparse.ArgumentParser(prog='graphc', description="graphc: Gluon-style deep learning with a graph compiler")
    p.add_argument('--version', action='version', version=f'graphc {__version__}')
    sub = p.add_subparsers(dest='cmd')
    sub.add_parser('info', help='versions, CPU features and devices')
    sub.add_parser('ops', help='the table of registered ops (Markdown)')
    args = p.parse_args(argv)
    if args.cmd == 'info':
        print(info())
    elif args.cmd == 'ops':
        print(op_table())
    else:
        p.print_help()
    return 0


if __name__ == '__main__':
    sys.exit(main())
