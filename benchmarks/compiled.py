"""Eager vs hybridized (compiled) vs hand-written NumPy (and PyTorch eager where installed), side by side in
one run: `graphc bench` under another name; the workloads live in graphc/bench.py.

    python benchmarks/compiled.py [--reps 30] [--quick] [--only lenet-train,chain1k] [--json out.json] [--png out.png]
"""
import sys

from graphc.cli import main

if __name__ == '__main__':
    sys.exit(main(['bench'] + sys.argv[1:]))
